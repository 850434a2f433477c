"""
Running the Stowage CLI: find it (the STOWAGE_CLI setting, else `stowage` on PATH), run one
command with `--json` and the effective config, relay its human output line by line as it comes
(the CLI writes it to stderr under --json), and read its JSON result from stdout.

The version is asked only when a run printed no JSON result (an old or foreign program), and by
the system check, so a working command costs one process.
"""
import json
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .config import effective_config, write_config

#: The oldest CLI this app drives (`--json`, `restore --verify`).
MIN_VERSION = (0, 1, 0)
INSTALL_HINT = 'install it (npm i -g @stowage/cli) or set STOWAGE_CLI to its path'
_WARNING_OR_ERROR = re.compile(r'^\S+: (warning|error): ')
_PROBE_TIMEOUT_S = 60


class CliUnavailable(Exception):
    """The CLI is missing, unusable or too old; `check_id` is the system check reporting it."""

    def __init__(self, message: str, check_id: str):
        super().__init__(message)
        self.check_id = check_id


@dataclass
class CliRun:
    """One finished CLI command."""

    exit_code: int
    #: The command's JSON result; None when it printed none (it failed, or the CLI is not Stowage).
    result: Optional[Dict[str, Any]] = None
    #: `{code, message}` when the command failed with an error.
    error: Optional[Dict[str, Any]] = None
    warnings: List[str] = field(default_factory=list)


def cli_command(settings) -> List[str]:
    """The argv prefix that runs the CLI: STOWAGE_CLI (a path or name, or an argv list), else `stowage`."""
    value = getattr(settings, 'STOWAGE_CLI', None) or 'stowage'
    argv = [os.fspath(value)] if isinstance(value, (str, os.PathLike)) else [os.fspath(part) for part in value]
    if not argv or not argv[0]:
        raise CliUnavailable('STOWAGE_CLI is empty: name the stowage program, or a list such as ["node", "/path/to/stowage.js"]', 'stowage.E002')
    executable = shutil.which(argv[0])
    if executable is None:
        raise CliUnavailable(f"the Stowage CLI '{argv[0]}' was not found: {INSTALL_HINT}", 'stowage.E002')
    return [executable, *argv[1:]]


def cli_version(command: Sequence[str]) -> Tuple[int, int, int]:
    """The CLI's version; CliUnavailable when it does not answer `--version` like Stowage or is older than MIN_VERSION."""
    answer = _probe(command, '--version')
    match = re.fullmatch(r'v?(\d+)\.(\d+)\.(\d+)\S*', answer.strip())
    if match is None:
        raise CliUnavailable(f"'{' '.join(command)} --version' printed {answer.strip()[:80]!r}, not a Stowage version: {INSTALL_HINT}", 'stowage.E003')
    version = (int(match[1]), int(match[2]), int(match[3]))
    if version < MIN_VERSION:
        raise CliUnavailable(
            f"the Stowage CLI {command[-1]} is version {'.'.join(map(str, version))}; this app needs {'.'.join(map(str, MIN_VERSION))} or newer: upgrade it (npm i -g @stowage/cli)",
            'stowage.E003',
        )
    return version


def supports(command: Sequence[str], subcommand: str, option: str) -> bool:
    """Whether `stowage SUBCOMMAND --help` lists OPTION (for options newer CLIs add)."""
    return re.search(rf'(^|[\s,]){re.escape(option)}(?![\w-])', _probe(command, subcommand, '--help')) is not None


def parse_output(text: str) -> Optional[Tuple[Optional[Dict[str, Any]], Optional[Dict[str, Any]], List[str]]]:
    """
    (result, error, warnings) from the CLI's stdout, or None when it holds no JSON object. Reads both
    the envelope `{ok, command, result, warnings, error}` and the bare shape (the result itself, or
    `{ok: false, error}`).
    """
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    if 'command' in document and 'result' in document:
        return document.get('result'), document.get('error'), list(document.get('warnings') or [])
    if document.get('ok') is False and 'error' in document:
        return None, document['error'], []
    return document, None, []


def run(settings, args: Sequence[str], *, stdout, stderr, positional: Sequence[str] = (), quiet: bool = False) -> CliRun:
    """
    Runs `stowage ARGS --config <effective config> --json [-- POSITIONAL]`. Human lines go to
    `stdout`, warnings and errors to `stderr` (Django OutputWrappers: write() ends the line).
    Raises SettingsError or CliUnavailable before anything runs.
    """
    effective = effective_config(settings)
    command = cli_command(settings)
    argv = [*command, *args, '--config', write_config(effective), '--json', *(['--quiet'] if quiet else []), *(['--', *positional] if positional else [])]
    try:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **effective.env},
            encoding='utf-8',
            errors='replace',
        )
    except OSError as error:
        raise CliUnavailable(f"cannot run the Stowage CLI {command[0]}: {error.strerror}: {INSTALL_HINT}", 'stowage.E002') from error
    collected: List[str] = []
    with child:
        reader = threading.Thread(target=lambda: collected.append(child.stdout.read()), daemon=True)
        reader.start()
        try:
            for line in child.stderr:
                (stderr if _WARNING_OR_ERROR.match(line) else stdout).write(line.rstrip('\n'))
            reader.join()
        except KeyboardInterrupt:
            child.wait()  # the terminal's Ctrl-C reached the CLI too: let it stop cleanly
            raise
    exit_code = child.returncode
    parsed = parse_output(''.join(collected))
    if parsed is None:
        cli_version(command)  # an old or foreign program says so here
        return CliRun(exit_code)
    result, error, warnings = parsed
    return CliRun(exit_code, result, error, warnings)


def _probe(command: Sequence[str], *args: str) -> str:
    try:
        done = subprocess.run([*command, *args], stdin=subprocess.DEVNULL, capture_output=True, encoding='utf-8', errors='replace', timeout=_PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise CliUnavailable(f"cannot run '{' '.join(command)} {' '.join(args)}': {error}: {INSTALL_HINT}", 'stowage.E002') from error
    return done.stdout
