"""The search: space files -> Optuna ask/tell -> trial pipeline -> store, artifacts, Pareto export."""

from __future__ import annotations

from autocompress.search.abort import AbortRule, Verdict
from autocompress.search.config import ResolvedSearch, SearchConfig, VoiceSource, resolve
from autocompress.search.daemon import default_runner_factory, run_search
from autocompress.search.pareto import dominates, export_pareto, feasible_front, mark_pareto
from autocompress.search.paths import artifacts_dir, student_dir, teacher_cache_path
from autocompress.search.plans import BASELINES, baseline_plan, plan_summary
from autocompress.search.progress import NullReporter, Reporter, SearchInfo, SearchSummary, TrialRow
from autocompress.search.space import FinetuneSettings, GroupSpace, SearchSpace, load_space, parse_space
from autocompress.search.trial import TrialHooks, TrialJob, TrialOutcome, TrialRunner

__all__ = [
    "AbortRule",
    "BASELINES",
    "FinetuneSettings",
    "GroupSpace",
    "NullReporter",
    "Reporter",
    "ResolvedSearch",
    "SearchConfig",
    "SearchInfo",
    "SearchSpace",
    "SearchSummary",
    "TrialHooks",
    "TrialJob",
    "TrialOutcome",
    "TrialRow",
    "TrialRunner",
    "VoiceSource",
    "Verdict",
    "artifacts_dir",
    "baseline_plan",
    "default_runner_factory",
    "dominates",
    "export_pareto",
    "feasible_front",
    "load_space",
    "mark_pareto",
    "parse_space",
    "plan_summary",
    "resolve",
    "run_search",
    "student_dir",
    "teacher_cache_path",
]
