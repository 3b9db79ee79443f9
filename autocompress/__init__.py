"""autocompress: automated compression search for GPT-SoVITS voices.

Data flows one way: model -> compressed -> fine-tuned -> scored -> stored -> exported.
Heavy subpackages are imported where they are used, so ``import autocompress`` stays light.
"""

from __future__ import annotations

from autocompress.exceptions import AutocompressError

__version__ = "0.1.0"

__all__ = ["AutocompressError", "__version__"]
