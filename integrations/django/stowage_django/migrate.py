import os
import sys
from typing import Optional

from django.conf import settings
from django.core.management.base import CommandError, OutputWrapper
from django.db import DEFAULT_DB_ALIAS, connections

from . import cli
from .config import SettingsError, app_options, database_path

#: Migrations named in the reason of the hot backup; longer plans end in "and N more".
REASON_MIGRATIONS = 10


class HotBackupBeforeMigrate:
    """
    The `pre_migrate` receiver (sent to this app once per migrate run) behind
    STOWAGE['hot_backup_before_migrate']: a hot backup of the live database, with the migration
    plan as its reason, before anything is migrated. A failed backup stops the migration unless
    STOWAGE['hot_backup_failure_stops_migrate'] is False.

    Only the live database is protected: the one DATABASES['default'] named when Django started.
    A migrate of another database (the test database of `manage.py test`, another alias), with
    nothing to apply, or of a database with no data yet (the first migrate) takes no backup.
    """

    def __init__(self, live_database: Optional[str]):
        self.live_database = live_database

    @classmethod
    def for_live_database(cls) -> 'HotBackupBeforeMigrate':
        try:
            return cls(database_path(settings))
        except SettingsError:
            return cls(None)  # reported when a hot backup is due (and by `manage.py check`)

    def __call__(self, sender, using=DEFAULT_DB_ALIAS, plan=None, verbosity=1, **kwargs):
        options = app_options(settings)
        if not options.get('hot_backup_before_migrate') or using != DEFAULT_DB_ALIAS or not plan or not self.due(using):
            return
        stdout = kwargs.get('stdout') or OutputWrapper(sys.stdout)
        stderr = OutputWrapper(sys.stderr)
        reason = describe_plan(plan)
        if verbosity:
            stdout.write(f'Stowage: hot backup {reason}')
        try:
            run = cli.run(settings, ['backup', '--type', 'hot', '--reason', reason], stdout=stdout, stderr=stderr, quiet=verbosity == 0)
            problem = None if run.exit_code in (0, 3) else f'stowage exited with code {run.exit_code}'
        except (SettingsError, cli.CliUnavailable) as error:
            problem = str(error)
        if problem is None:
            return
        if options.get('hot_backup_failure_stops_migrate', True):
            raise CommandError(
                f"the hot backup before migrate failed ({problem}), so nothing was migrated; fix that and migrate again, "
                "or set STOWAGE['hot_backup_failure_stops_migrate'] = False to migrate without it"
            )
        stderr.write(f"Stowage: the hot backup before migrate failed ({problem}); migrating anyway, as STOWAGE['hot_backup_failure_stops_migrate'] is False")

    def due(self, using: str) -> bool:
        """Whether the database being migrated is the live one and holds data."""
        if self.live_database is None:
            return True  # not an SQLite file: cli.run reports it
        name = connections[using].settings_dict.get('NAME') or ''
        path = os.path.abspath(os.fspath(name))
        return path == self.live_database and os.path.isfile(path) and os.path.getsize(path) > 0


def describe_plan(plan) -> str:
    """`before migrate: shop.0002_item_price, stock.0003_x (unapply)` — the reason of the hot backup."""
    names = [f"{migration.app_label}.{migration.name}{' (unapply)' if backwards else ''}" for migration, backwards in plan]
    more = len(names) - REASON_MIGRATIONS
    return 'before migrate: ' + ', '.join(names[:REASON_MIGRATIONS]) + (f' and {more} more' if more > 0 else '')
