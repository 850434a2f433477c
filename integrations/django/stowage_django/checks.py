from django.conf import settings
from django.core.checks import Error

from . import cli
from .config import SettingsError, effective_config


def check_stowage(app_configs=None, **kwargs):
    """
    `manage.py check`: the settings translate into a Stowage config (stowage.E001), the CLI is
    found (E002) and recent enough (E003, by asking its version).
    """
    errors = []
    try:
        effective_config(settings)
    except SettingsError as error:
        errors.append(Error(str(error), id='stowage.E001'))
    try:
        cli.cli_version(cli.cli_command(settings))
    except cli.CliUnavailable as error:
        errors.append(Error(str(error), id=error.check_id))
    return errors
