"""``amlretrain job submit|status|wait|cancel|results``: Batch Execution Service jobs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlretrain.cli._common import (
    add_group,
    add_output_flag,
    add_progress_flag,
    emit,
    wants_progress,
)
from amlretrain.errors import ConfigurationError

if TYPE_CHECKING:
    from amlretrain.blobs import BlobRef
    from amlretrain.studio.batch import TrainingJob


__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``job`` command group."""
    from amlretrain.cli._settings import add_bes_flags

    commands = add_group(
        subparsers,
        "job",
        help="batch (BES) training jobs: submit, status, wait, cancel, results",
        description="Jobs on one endpoint: its ApiLocation (--api-location or "
        "AMLRETRAIN_API_LOCATION) and API key (AMLRETRAIN_API_KEY). Local input files are "
        "uploaded to AMLRETRAIN_STORAGE_CONNECTION_STRING's account.",
    )

    submit = commands.add_parser("submit", help="submit a job (Invoke-AmlWebServiceBESEndpoint)")
    submit.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a local file (uploaded), a blob URL, or container/blob; repeatable",
    )
    submit.add_argument(
        "--output-blob",
        action="append",
        default=[],
        metavar="NAME=container/blob",
        help="where an output goes (.csv, .tsv, .arff, .ilearner); repeatable",
    )
    submit.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a global parameter of the job (GlobalParameters); repeatable",
    )
    submit.add_argument("--no-start", action="store_true", help="create the job only")
    submit.add_argument("--wait", action="store_true", help="wait for the job to end")
    submit.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="with --wait: cancel the job after SECONDS (default 3600)",
    )
    add_progress_flag(submit)
    add_bes_flags(submit)
    add_output_flag(submit)
    submit.set_defaults(handler=_submit)

    for name, help_text, handler in (
        ("status", "show a job's status", _status),
        ("wait", "wait until a job ends (cancels it on timeout or Ctrl-C)", _wait),
        ("cancel", "cancel (delete) a job", _cancel),
        ("results", "the job's outputs, trained model and evaluation", _results),
    ):
        p = commands.add_parser(name, help=help_text)
        p.add_argument("job_id", help="the job's id (as job submit prints it)")
        add_bes_flags(p)
        add_output_flag(p)
        if name == "wait":
            p.add_argument(
                "--timeout",
                type=float,
                default=3600.0,
                metavar="SECONDS",
                help="cancel the job after SECONDS (default 3600)",
            )
            add_progress_flag(p)
        if name == "results":
            p.add_argument("--evaluation", action="store_true", help="download the metrics")
        p.set_defaults(handler=handler)


def _pairs(values: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigurationError(f"{what} {item!r} must be NAME=VALUE")
        out[name] = value
    return out


def _input(value: str) -> str | Path | BlobRef:
    from amlretrain.blobs import BlobRef

    if value.startswith(("http://", "https://")):
        return BlobRef.from_url(value)
    path = Path(value)
    return path if path.is_file() else value


def _job_data(job: TrainingJob) -> dict[str, Any]:
    return {"job_id": job.job_id, "status": job.status.label, "details": job.details}


def _job_text(job: TrainingJob) -> str:
    text = f"job {job.job_id}: {job.status.label}"
    return text + (f"\n{job.details}" if job.details else "")


def _submit(args: argparse.Namespace) -> int:
    from amlretrain.cli._settings import resolve

    settings = resolve(args)
    inputs = {k: _input(v) for k, v in _pairs(args.input, "--input").items()}
    with settings.batch_client() as bes:
        job = bes.submit(
            inputs,
            outputs=_pairs(args.output_blob, "--output-blob"),
            global_parameters=_pairs(args.param, "--param"),
            store=settings.store(),
            start=not args.no_start,
        )
        if args.wait:
            job.wait(timeout=args.timeout, progress=wants_progress(args))
    emit(args, _job_data(job), _job_text(job))
    return 0


def _status(args: argparse.Namespace) -> int:
    from amlretrain.cli._settings import resolve

    with resolve(args).batch_client() as bes:
        job = bes.get_job(args.job_id)
    emit(args, {**_job_data(job), "document": job.document}, _job_text(job))
    return 0


def _wait(args: argparse.Namespace) -> int:
    from amlretrain.cli._settings import resolve
    from amlretrain.studio.batch import TrainingJob

    with resolve(args).batch_client() as bes:
        job = TrainingJob(bes, args.job_id).wait(
            timeout=args.timeout, progress=wants_progress(args)
        )
    emit(args, _job_data(job), _job_text(job))
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from amlretrain.cli._settings import resolve
    from amlretrain.studio.batch import TrainingJob

    with resolve(args).batch_client() as bes:
        TrainingJob(bes, args.job_id).cancel()
    emit(args, {"job_id": args.job_id, "cancelled": True}, f"cancelled {args.job_id}")
    return 0


def _results(args: argparse.Namespace) -> int:
    from amlretrain.cli._settings import resolve

    with resolve(args).batch_client() as bes:
        job = bes.get_job(args.job_id)
        results = job.results
        data: dict[str, Any] = {
            **_job_data(job),
            "outputs": {name: ref.url for name, ref in results.items()},
        }
        lines = [_job_text(job)] + [f"{n}: {r.url}" for n, r in results.items()]
        models = [n for n, r in results.items() if r.relative_location.endswith(".ilearner")]
        if len(models) == 1:
            data["trained_model"] = models[0]
            lines.append(f"trained model: {models[0]}")
        if args.evaluation:
            metrics = job.evaluation()
            data["evaluation"] = metrics.as_dict()
            lines += [f"  {k}: {v:.6g}" for k, v in metrics.values.items()]
    emit(args, data, "\n".join(lines))
    return 0
