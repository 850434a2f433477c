"""cli.run against a stand-in CLI (a Python script): the argv it gets, its environment, the relayed output."""
import io
import json
import os
import sys
import textwrap

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError, OutputWrapper
from django.test import override_settings

from stowage_django import cli
from stowage_django.management.commands.db_restore import Command as DbRestore

from .test_config import SettingsCase

FAKE = '''
import json, os, sys
if sys.argv[1:] == ['--version']:
    print(os.environ.get('FAKE_VERSION', '0.1.0'))
    sys.exit(0)
sys.stderr.write('a line for people\\nstowage: warning: one destination is slow\\n')
if os.environ.get('FAKE_VERSION'):
    sys.exit(2)  # an old CLI: no JSON
result = {'argv': sys.argv[1:], 'password': os.environ.get('STOWAGE_EMAIL_HOST_PASSWORD')}
print(json.dumps({'ok': True, 'command': sys.argv[1], 'result': result, 'warnings': ['slow'], 'error': None}))
sys.exit(3)
'''


class CliRunTest(SettingsCase):
    def setUp(self):
        super().setUp()
        script = self.base / 'fake_stowage.py'
        script.write_text(textwrap.dedent(FAKE))
        self.cli_setting = override_settings(STOWAGE_CLI=[sys.executable, script])
        self.cli_setting.enable()
        self.addCleanup(self.cli_setting.disable)
        self.out, self.err = io.StringIO(), io.StringIO()

    def run_cli(self, args, positional=()):
        return cli.run(settings, args, stdout=OutputWrapper(self.out), stderr=OutputWrapper(self.err), positional=positional)

    def test_argv_environment_output_and_exit_code(self):
        run = self.run_cli(['verify'], ['--all'])  # a backup named like an option stays an argument
        self.assertEqual(run.exit_code, 3)
        self.assertEqual(run.result['argv'], ['verify', '--config', str(self.base / '.stowage-django.json'), '--json', '--', '--all'])
        self.assertEqual(run.result['password'], 'hunter2-secret')  # in the child's environment only
        self.assertNotIn('STOWAGE_EMAIL_HOST_PASSWORD', os.environ)
        self.assertEqual(run.warnings, ['slow'])
        self.assertEqual(self.out.getvalue(), 'a line for people\n')
        self.assertEqual(self.err.getvalue(), 'stowage: warning: one destination is slow\n')

    def test_an_old_or_missing_cli_is_named(self):
        os.environ['FAKE_VERSION'] = '0.0.9'
        self.addCleanup(os.environ.pop, 'FAKE_VERSION')
        with self.assertRaisesRegex(cli.CliUnavailable, r'is version 0\.0\.9; this app needs 0\.1\.0 or newer') as raised:
            self.run_cli(['list'])
        self.assertEqual(raised.exception.check_id, 'stowage.E003')
        os.environ['FAKE_VERSION'] = 'garbage'
        with self.assertRaisesRegex(cli.CliUnavailable, "printed 'garbage', not a Stowage version"):
            self.run_cli(['list'])
        with override_settings(STOWAGE_CLI='/nonexistent/stowage'), self.assertRaisesRegex(cli.CliUnavailable, 'not found: install it') as raised:
            self.run_cli(['list'])
        self.assertEqual(raised.exception.check_id, 'stowage.E002')

    def test_supports_reads_the_help(self):
        help_script = self.base / 'help.py'
        help_script.write_text("print('Options:\\n  --target <path>  restore here\\n  -y, --yes  do not ask')")
        self.assertTrue(cli.supports([sys.executable, str(help_script)], 'restore', '--yes'))
        self.assertFalse(cli.supports([sys.executable, str(help_script)], 'restore', '--force'))
        self.assertFalse(cli.supports([sys.executable, str(help_script)], 'restore', '--ta'))


RECORDER = '''
import json, os, sys
if sys.argv[1:] == ['--version']:
    print('0.1.0')
    sys.exit(0)
with open(os.environ['STOWAGE_TEST_ARGV'], 'w') as f:
    json.dump(sys.argv[1:], f)
print(json.dumps({'ok': True, 'command': sys.argv[1], 'result': {}, 'warnings': [], 'error': None}))
'''


class DbRestoreThawTest(SettingsCase):
    """db_restore passes --thaw [--tier] [--days] [--wait [D]] through to `stowage restore`."""

    def setUp(self):
        super().setUp()
        script = self.base / 'recorder.py'
        script.write_text(textwrap.dedent(RECORDER))
        self.argv_file = self.base / 'argv.json'
        self.cli_setting = override_settings(STOWAGE_CLI=[sys.executable, script])
        self.cli_setting.enable()
        self.addCleanup(self.cli_setting.disable)
        os.environ['STOWAGE_TEST_ARGV'] = str(self.argv_file)
        self.addCleanup(os.environ.pop, 'STOWAGE_TEST_ARGV')

    def db_restore(self, *args):
        call_command(DbRestore(), *args, stdout=io.StringIO(), stderr=io.StringIO())
        return json.loads(self.argv_file.read_text())

    def test_thaw_options_reach_the_cli(self):
        config = ['--config', str(self.base / '.stowage-django.json'), '--json']
        argv = self.db_restore('--file', 'full_backup_x', '--test-mode', '--thaw', '--tier', 'bulk', '--days', '3', '--wait')
        self.assertEqual(argv, ['restore', '--test-mode', '--thaw', '--tier', 'bulk', '--days', '3', '--wait', *config, '--', 'full_backup_x'])
        argv = self.db_restore('--file', 'full_backup_x', '--test-mode', '--thaw', '--wait', '12h')
        self.assertEqual(argv, ['restore', '--test-mode', '--thaw', '--wait', '12h', *config, '--', 'full_backup_x'])
        self.assertEqual(self.db_restore('--file', 'full_backup_x', '--test-mode')[:2], ['restore', '--test-mode'])

    def test_check_reaches_the_cli(self):
        config = ['--config', str(self.base / '.stowage-django.json'), '--json']
        argv = self.db_restore('--file', 'full_backup_x', '--test-mode', '--check', 'full', '--thaw')
        self.assertEqual(argv, ['restore', '--test-mode', '--check', 'full', '--thaw', *config, '--', 'full_backup_x'])
        self.assertEqual(self.db_restore('--file', 'full_backup_x', '--test-mode', '--check', 'quick')[:4], ['restore', '--test-mode', '--check', 'quick'])

    def test_thaw_options_without_thaw_or_file_are_refused(self):
        for args in (['--file', 'x', '--test-mode', '--tier', 'bulk'], ['--file', 'x', '--test-mode', '--wait'], ['--list', '--thaw'], ['--verify', '--check', 'full']):
            with self.assertRaises(CommandError) as raised:
                self.db_restore(*args)
            self.assertEqual(raised.exception.returncode, 2)
        self.assertFalse(self.argv_file.exists(), 'the CLI never ran')
