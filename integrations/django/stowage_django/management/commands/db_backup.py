from django.core.management.base import CommandError

from ...command import StowageCommand


class Command(StowageCommand):
    help = 'Back up the database and media with Stowage (the seed document\'s db_backup): --type=full|incremental|hot, --cleanup, --verify=FILE, --validate-data=FILE'

    def add_arguments(self, parser):
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument('--type', choices=['full', 'incremental', 'hot'], help='take a backup of this type')
        action.add_argument('--cleanup', action='store_true', help='delete backups past their retention')
        action.add_argument('--verify', metavar='FILE', help='check a backup at every destination (a file name or path, an id, or latest)')
        action.add_argument('--validate-data', metavar='FILE', help='restore a backup to scratch and check its data')
        parser.add_argument('--reason', help='why (recorded with the backup, e.g. for a hot backup)')

    def handle(self, *args, **options):
        if options['reason'] is not None and options['type'] is None:
            raise CommandError('--reason goes with --type', returncode=2)
        if options['type']:
            self.run_cli(['backup', '--type', options['type'], *(['--reason', options['reason']] if options['reason'] is not None else [])])
        elif options['cleanup']:
            self.run_cli(['cleanup'])
        elif options['verify']:
            self.run_cli(['verify'], [options['verify']])
        else:
            self.run_cli(['validate'], [options['validate_data']])
