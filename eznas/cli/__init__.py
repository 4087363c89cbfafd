"""Command-line front ends, one module per command (verify, evolve, search) over what they share (common,
progress). Entry scripts and ``eznas COMMAND`` call the ``*_main`` functions; they parse flags, show progress
and print results. The domain knowledge they use lives below (eznas.config, eznas.gp.presets, the configs)."""
from eznas.cli.common import SHARED, add_shared, hall_of_fame_programs, run_cli, run_command
from eznas.cli.evolve import evolve_main, evolve_parser, evolve_setup, new_run_config
from eznas.cli.progress import LogProgress, progress_bar
from eznas.cli.search import search_main, search_parser
from eznas.cli.verify import DEFAULT_PROXIES, verify_config, verify_main, verify_parser
from eznas.gp.presets import check_tasks, default_tasks, evolve_datasets, quick_config

__all__ = ["DEFAULT_PROXIES", "SHARED", "LogProgress", "add_shared",
           "check_tasks", "default_tasks", "evolve_datasets", "evolve_main", "evolve_parser", "evolve_setup", "hall_of_fame_programs",
           "new_run_config", "progress_bar", "quick_config", "run_cli", "run_command", "search_main", "search_parser",
           "verify_config", "verify_main", "verify_parser"]
