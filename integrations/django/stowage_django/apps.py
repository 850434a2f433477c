from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import pre_migrate


class StowageConfig(AppConfig):
    name = 'stowage_django'
    label = 'stowage'
    verbose_name = 'Stowage backups'

    def ready(self):
        from .checks import check_stowage
        from .migrate import HotBackupBeforeMigrate

        checks.register(check_stowage, 'stowage')
        pre_migrate.connect(HotBackupBeforeMigrate.for_live_database(), sender=self, weak=False, dispatch_uid='stowage-hot-backup-before-migrate')
