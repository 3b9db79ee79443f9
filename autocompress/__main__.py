from autocompress.cli.main import main

raise SystemExit(main())
