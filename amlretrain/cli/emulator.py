"""``amlretrain emulator start|config``: run the local emulator; write a config for it."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from amlretrain.cli._common import add_group, add_output_flag, emit
from amlretrain.errors import ConfigurationError

__all__ = ["register"]

DEFAULT_INFO_FILE = Path(".amlretrain") / "emulator.json"

#: The fault-file format, for ``emulator start --help`` (the full reference is the
#: docstring of :mod:`amlretrain.emulator.faults` and docs/retrain.md).
FAULTS_HELP = """\
fault file (--faults FILE): a list of rules, as JSON ({"faults": [{...}, ...]} or a
bare [...]) or as TOML ([[faults]] tables). Each rule:
  route        a route name or a glob (default "*"): arm.get|list|put|patch|delete|
               listkeys|regional|operation, classic.get_endpoint|list_endpoints|
               add_endpoint|patch_endpoint|refresh_endpoint|delete_endpoint|get_service,
               bes.submit|start|status|delete, rrs.execute|swagger, v2.endpoint.put|
               delete, v2.deployment.put|patch|delete, v2.job.put, v2.score; or
               classic.*, v2.*, *
  kind         what happens (required):
                 latency       add `seconds` to every matching request
                 status        answer `status` (default 503; 429 gets `retry_after`)
                 drop          close the connection, the request not applied
                 apply_drop    apply the request, then close the connection
                 apply_status  apply the request, then answer `status` (default 500)
                 kill          send `signal` (default SIGKILL) to process `pid`,
                               `when` "before" (default) or "after" the request applies
                 lro_fail      the next ARM operation ends Failed
                 lro_hang      the next ARM operation never completes
                 lro_slow      the next ARM or v2 operation runs `seconds`
                 stale         reads answer the resource as before a write, for `seconds`
                 job_fail      the next batch job ends Failed with `message`
                 job_slow      the next batch job runs `seconds`
                 train_shuffled  the next job trains on shuffled labels (`seed`): a
                               worse model (bes.submit or bes.start)
                 train_behaviour the next job's model carries a behaviour: `error_rate`
                               of its scoring requests fail (`status` 500/503),
                               `score_shift` added to its scores, `seconds` added to
                               each scoring (`seed`)
                 v2_stale_traffic  (F2) reads show the old traffic for `seconds`
                 v2_busy       (F3) the write is refused with 409 Conflict
                 v2_canceled   (F4) the operation ends Canceled (OperationCanceled)
                 v2_lro_fail   (F5) the operation ends Failed (ResourceNotReady)
                 v2_internal_error  (F6) a deployment ends Failed (InternalServerError)
                 v2_out_of_quota    (F7) a deployment ends Failed (OutOfQuota)
                 v2_name_taken (F8) an endpoint create: 409 EndpointAlreadyExists
                 v2_k8s_not_found   (F9) 404 NotFound (InferencingClientCallFailed)
                 v2_reported_failed (F12) the operation says Failed, the change landed
                 (F11: status 408, 424 or 429 on route v2.score; see docs/emulator-v2.md)
  count        times the rule fires (default 1; "forever" for no limit)
  skip         matching requests let through before it fires (default 0)
  status, retry_after, seconds, message, pid, signal, when, seed, error_rate,
  score_shift: as the kind needs
example (faults.toml):
  [[faults]]
  route = "arm.patch"
  kind = "status"
  status = 503
  count = 2
"""


def register(subparsers: Any) -> None:
    """Add the ``emulator`` command group."""
    commands = add_group(
        subparsers,
        "emulator",
        help="the local emulator of the services (ARM, classic, batch, scoring) with Azurite",
    )

    start = commands.add_parser(
        "start",
        help="run the emulator in the foreground until Ctrl-C",
        description="Start the emulator and Azurite on loopback and print what a client "
        "needs. Secrets (tokens, keys, the storage connection string) are written to the "
        "info file (mode 0600), not printed, unless --show-secrets.",
        epilog=FAULTS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    start.add_argument(
        "--no-seed",
        dest="seed",
        action="store_false",
        help="start empty (default: seed a training service, a New predictive "
        "web service and a classic predictive endpoint)",
    )
    start.add_argument("--seed", dest="seed", action="store_true", help=argparse.SUPPRESS)
    start.add_argument("--host", default="127.0.0.1", help="loopback address to serve on")
    start.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    start.add_argument(
        "--info-file",
        default=str(DEFAULT_INFO_FILE),
        help=f"where to write the details with secrets (default {DEFAULT_INFO_FILE})",
    )
    start.add_argument("--show-secrets", action="store_true", help="print secrets too")
    start.add_argument(
        "--faults",
        metavar="FILE",
        help="inject faults: a JSON (.json) or TOML file of fault rules (format below)",
    )
    start.add_argument(
        "--lro-delay",
        type=float,
        default=0.2,
        metavar="SECONDS",
        help="seconds an ARM operation stays Provisioning (default 0.2)",
    )
    start.add_argument(
        "--job-duration",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="seconds a batch job runs at least (default 0.5)",
    )
    add_output_flag(start)
    start.set_defaults(handler=_start, seed=True)

    config = commands.add_parser(
        "config",
        help="write a retrain.toml (and an env file with its secrets) for a running emulator",
        description="Write a retrain.toml for the emulator started by `amlretrain emulator "
        "start` (read from its info file), and a shell file exporting the secrets it names "
        "(mode 0600, rewritten each time: the emulator's secrets change with every start). "
        "An existing config is refused unless --force.",
    )
    config.add_argument(
        "--info-file",
        default=str(DEFAULT_INFO_FILE),
        help=f"the running emulator's info file (default {DEFAULT_INFO_FILE})",
    )
    config.add_argument("-o", "--out", default="retrain.toml", help="the config to write")
    config.add_argument("--force", action="store_true", help="overwrite an existing config")
    config.add_argument(
        "--env-file",
        default=str(Path(".amlretrain") / "emulator.env"),
        help="shell file exporting the secrets the config names (mode 0600)",
    )
    config.add_argument("--data", help="training data (default: the bundled census_new.csv)")
    ledgers = config.add_mutually_exclusive_group()
    ledgers.add_argument(
        "--ledger",
        default=str(Path(".amlretrain") / "ledger.jsonl"),
        help="the ledger file the config names (default .amlretrain/ledger.jsonl)",
    )
    ledgers.add_argument(
        "--ledger-blob",
        metavar="CONTAINER/PATH",
        help="a blob ledger in the emulator's Azurite instead (the Airflow operators need one)",
    )
    config.add_argument(
        "--airflow-connection",
        metavar="FILE",
        help="also write FILE (mode 0600) for `airflow connections import FILE`: the "
        "connection amlretrain_default with the secrets the config names (docs/airflow.md)",
    )
    add_output_flag(config)
    config.set_defaults(handler=_config)


def _start(args: argparse.Namespace) -> int:
    from amlretrain.emulator._run import run

    info_file = Path(args.info_file)
    info_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.write(f"starting the emulator; details with secrets go to {info_file}\n")
    return run(
        stream=sys.stdout,
        seed=args.seed,
        host=args.host,
        port=args.port,
        output=args.output,
        include_secrets=args.show_secrets,
        info_file=info_file,
        faults_file=args.faults,
        lro_delay=args.lro_delay,
        job_duration=args.job_duration,
    )


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _config(args: argparse.Namespace) -> int:
    from amlretrain.cli._emulator_config import emulator_config, emulator_environment

    info_path = Path(args.info_file)
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigurationError(
            f"cannot read {info_path} ({err.strerror}): start the emulator first "
            "(amlretrain emulator start)"
        ) from err
    except ValueError as err:
        raise ConfigurationError(f"{info_path} is not the emulator's info file") from err
    if not isinstance(info, dict) or not info.get("training_service"):
        raise ConfigurationError(
            f"{info_path}: the emulator was started with --no-seed (nothing to retrain)"
        )
    data = (
        Path(args.data)
        if args.data
        else (Path(__file__).resolve().parents[1] / "emulator" / "data" / "census_new.csv")
    )
    out = Path(args.out)
    if out.exists() and not args.force:
        raise ConfigurationError(f"{out} exists: pass --force to overwrite it")
    if not data.is_file():
        raise ConfigurationError(f"--data {data}: no such file")
    blob = args.ledger_blob
    if blob is not None and not _BLOB_PATH.match(blob):
        raise ConfigurationError(
            f"--ledger-blob {blob!r}: give CONTAINER/PATH (a container name of 3-63 lowercase "
            "letters, digits and hyphens, then the blob's path)"
        )
    text_config = emulator_config(
        info, data=data.resolve(), ledger=Path(args.ledger).resolve(), ledger_blob=blob
    )
    out.write_text(text_config)
    env = emulator_environment(info)
    _write_private(
        Path(args.env_file),
        "".join(f"export {name}={json.dumps(value)}\n" for name, value in env.items()),
    )
    written = {"config": str(out), "env_file": args.env_file, "variables": sorted(env)}
    text = f"wrote {out} and {args.env_file} (the secrets it names)\n"
    if args.airflow_connection:
        connection = {"amlretrain_default": {"conn_type": "amlretrain", "extra": {"env": env}}}
        _write_private(Path(args.airflow_connection), json.dumps(connection, indent=2) + "\n")
        written["airflow_connection"] = args.airflow_connection
        text += (
            f"wrote {args.airflow_connection} (the Airflow connection amlretrain_default)\n"
            f"next:  airflow connections import {args.airflow_connection}"
        )
    else:
        text += f"next:  . {args.env_file} && amlretrain retrain --config {out}"
    emit(args, written, text)
    return 0


#: ``container/path`` of ``--ledger-blob`` (Azure's container naming rules).
_BLOB_PATH = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}/[^/].*$")
