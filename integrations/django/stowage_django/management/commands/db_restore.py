from django.conf import settings
from django.core.management.base import CommandError

from ... import cli
from ...command import StowageCommand
from ...config import SettingsError, effective_config

#: The seed document's emergency procedure. The CLI cannot tell whether a server holds the
#: database open, so a live restore says this instead of refusing.
STOP_THE_APPLICATION = (
    'Stop the application before a live restore (e.g. sudo systemctl stop supervisor nginx, or stop runserver): '
    'a process that keeps the database open goes on writing to the copy moved aside. '
    'Restart it after `python manage.py db_restore --verify`.'
)


class Command(StowageCommand):
    help = (
        "Restore with Stowage (the seed document's db_restore): --file=FILE [--test-mode] [--check auto|quick|full] [--thaw [--tier T] [--days N] [--wait [D]]], "
        '--list, --verify [--test-mode]'
    )

    def add_arguments(self, parser):
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument('--file', metavar='FILE', help='restore this backup (a file name or path, an id, or latest) over the live database and media')
        action.add_argument('--list', action='store_true', help='list the backups')
        action.add_argument('--verify', action='store_true', help='check the database restored last against its backup')
        parser.add_argument('--test-mode', action='store_true', help='restore into a scratch folder; the live database is not touched')
        parser.add_argument('--noinput', '--no-input', action='store_false', dest='interactive', help='do not ask before a live restore')
        parser.add_argument(
            '--check',
            choices=['auto', 'quick', 'full'],
            help='with --file: the checks of the restored database (stowage restore --check; default auto: none over the whole file when the snapshot passed the full checks before)',
        )
        # Archive offload: passed through to `stowage restore --thaw [--tier] [--days] [--wait]`.
        parser.add_argument('--thaw', action='store_true', help='with --file: request thaws of the archived artifacts the restore needs (S3, OSS archive classes)')
        parser.add_argument('--tier', choices=['expedited', 'standard', 'bulk'], help='with --thaw: how fast (and how dear) the thaw is (default standard)')
        parser.add_argument('--days', type=int, metavar='N', help='with --thaw: how many days the thawed copies stay readable (default 7)')
        parser.add_argument('--wait', nargs='?', const=True, metavar='DURATION', help='with --thaw: wait for the thaws (at most DURATION, e.g. 12h), then restore')

    def handle(self, *args, **options):
        test_mode = ['--test-mode'] if options['test_mode'] else []
        thaw = thaw_args(options)
        if thaw and not options['file']:
            raise CommandError('--thaw, --tier, --days and --wait go with --file', returncode=2)
        if options.get('check') and not options['file']:
            raise CommandError('--check goes with --file', returncode=2)
        thaw = [*(['--check', options['check']] if options.get('check') else []), *thaw]
        if options['list']:
            if test_mode:
                raise CommandError('--test-mode goes with --file or --verify', returncode=2)
            self.run_cli(['list'])
        elif options['verify']:
            self.run_cli(['restore', '--verify', *test_mode])
        elif test_mode:
            self.run_cli(['restore', *test_mode, *thaw], [options['file']])
        else:
            self.live_restore(options['file'], options['interactive'], thaw)

    def live_restore(self, backup: str, interactive: bool, thaw: list) -> None:
        try:
            effective_config(settings)  # a settings problem is reported before the question
            # The user confirms here (or passed --noinput), so a CLI that wants --yes off a terminal gets it.
            yes = ['--yes'] if cli.supports(cli.cli_command(settings), 'restore', '--yes') else []
        except (SettingsError, cli.CliUnavailable) as error:
            raise CommandError(str(error), returncode=2) from error
        self.stdout.write(STOP_THE_APPLICATION, self.style.WARNING)
        if interactive and not self.confirmed(backup):
            raise CommandError('restore cancelled; nothing was changed (--noinput restores without asking)')
        self.run_cli(['restore', *yes, *thaw], [backup])

    def confirmed(self, backup: str) -> bool:
        try:
            answer = input(f"Replace the live database and media with {backup}? The current ones are kept as *.damaged_<time>. Type 'yes' to continue: ")
        except EOFError:
            return False
        return answer.strip().lower() == 'yes'


def thaw_args(options: dict) -> list:
    """The CLI's `--thaw [--tier T] [--days N] [--wait [D]]` from the command's options; a CommandError (2) without --thaw."""
    wait = options.get('wait')
    if not options.get('thaw'):
        if options.get('tier') or options.get('days') is not None or wait is not None:
            raise CommandError('--tier, --days and --wait go with --thaw', returncode=2)
        return []
    return [
        '--thaw',
        *(['--tier', options['tier']] if options.get('tier') else []),
        *(['--days', str(options['days'])] if options.get('days') is not None else []),
        *(['--wait'] if wait is True else ['--wait', wait] if wait else []),
    ]
