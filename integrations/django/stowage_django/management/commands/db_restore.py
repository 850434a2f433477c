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
    help = 'Restore with Stowage (the seed document\'s db_restore): --file=FILE [--test-mode], --list, --verify [--test-mode]'

    def add_arguments(self, parser):
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument('--file', metavar='FILE', help='restore this backup (a file name or path, an id, or latest) over the live database and media')
        action.add_argument('--list', action='store_true', help='list the backups')
        action.add_argument('--verify', action='store_true', help='check the database restored last against its backup')
        parser.add_argument('--test-mode', action='store_true', help='restore into a scratch folder; the live database is not touched')
        parser.add_argument('--noinput', '--no-input', action='store_false', dest='interactive', help='do not ask before a live restore')

    def handle(self, *args, **options):
        test_mode = ['--test-mode'] if options['test_mode'] else []
        if options['list']:
            if test_mode:
                raise CommandError('--test-mode goes with --file or --verify', returncode=2)
            self.run_cli(['list'])
        elif options['verify']:
            self.run_cli(['restore', '--verify', *test_mode])
        elif test_mode:
            self.run_cli(['restore', *test_mode], [options['file']])
        else:
            self.live_restore(options['file'], options['interactive'])

    def live_restore(self, backup: str, interactive: bool) -> None:
        try:
            effective_config(settings)  # a settings problem is reported before the question
            # The user confirms here (or passed --noinput), so a CLI that wants --yes off a terminal gets it.
            yes = ['--yes'] if cli.supports(cli.cli_command(settings), 'restore', '--yes') else []
        except (SettingsError, cli.CliUnavailable) as error:
            raise CommandError(str(error), returncode=2) from error
        self.stdout.write(STOP_THE_APPLICATION, self.style.WARNING)
        if interactive and not self.confirmed(backup):
            raise CommandError('restore cancelled; nothing was changed (--noinput restores without asking)')
        self.run_cli(['restore', *yes], [backup])

    def confirmed(self, backup: str) -> bool:
        try:
            answer = input(f"Replace the live database and media with {backup}? The current ones are kept as *.damaged_<time>. Type 'yes' to continue: ")
        except EOFError:
            return False
        return answer.strip().lower() == 'yes'
