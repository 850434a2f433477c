"""The base of db_backup and db_restore: one CLI command per invocation, its exit code passed through."""
from typing import Sequence

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from . import cli
from .config import SettingsError

#: What the CLI's non-zero exit codes mean (its README's table).
EXIT_MEANINGS = {
    1: 'failed',
    2: 'usage or configuration error',
    3: 'degraded: stored at fewer destinations than configured, `stowage sync` repairs it',
}


class StowageCommand(BaseCommand):
    # The commands check what they need themselves (settings, the CLI), so a problem elsewhere in
    # the project never stops a backup, and the CLI's version is not asked on every run.
    requires_system_checks = []

    def run_cli(self, args: Sequence[str], positional: Sequence[str] = ()) -> cli.CliRun:
        """Runs the CLI; a non-zero exit becomes a CommandError with the same exit code."""
        try:
            run = cli.run(settings, args, stdout=self.stdout, stderr=self.stderr, positional=positional, quiet=self.verbosity == 0)
        except (SettingsError, cli.CliUnavailable) as error:
            raise CommandError(str(error), returncode=2) from error
        if run.exit_code != 0:
            meaning = EXIT_MEANINGS.get(run.exit_code, 'failed')
            raise CommandError(f"stowage {args[0]} exited with code {run.exit_code} ({meaning})", returncode=run.exit_code)
        return run

    def execute(self, *args, **options):
        self.verbosity = options.get('verbosity', 1)
        return super().execute(*args, **options)
