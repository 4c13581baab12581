"""`workbench models check`: load a model and report its size, dtype, device and memory."""

from __future__ import annotations

import argparse
import json
from typing import Any


def cmd_models_check(args: argparse.Namespace) -> int:
    from workbench.core.config import ModelConfig
    from workbench.core.models import check_model, format_bytes, format_count

    quant = "4bit" if args.load_in_4bit else "8bit" if args.load_in_8bit else "none"
    cfg = ModelConfig(
        name_or_path=args.model, device=args.device, dtype=args.dtype, quantization=quant,
        trust_remote_code=args.trust_remote_code, revision=args.revision,
    )
    from workbench.core.progress import TerminalProgress

    report = check_model(cfg, progress=TerminalProgress("load"))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    rows = [
        ("model", report["source"]),
        *([("converted to", report["converted_to"])] if report["converted_to"] else []),
        ("architecture", report["architecture"]),
        ("parameters", f"{format_count(report['parameters'])} ({report['parameters']:,})"),
        ("dtype", report["dtype"]),
        ("quantization", report["quantization"]),
        ("device", report["device"]),
        ("weights in memory", format_bytes(report["weight_bytes"])),
        ("memory used by load", format_bytes(report["memory_delta_bytes"])),
        ("load time", f"{report['load_seconds']} s"),
        ("vocabulary", f"{report['vocab_size']:,} tokens"),
        ("chat template", report["chat_template"]),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def add_models_parser(sub: Any) -> None:
    models = sub.add_parser("models", help="inspect models")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = msub.add_parser("check", help="load a model and report size, dtype, device and memory")
    p.add_argument("model", help="hub id or local model folder")
    quant = p.add_mutually_exclusive_group()
    quant.add_argument("--load-in-4bit", action="store_true", help="NF4 4-bit (bitsandbytes)")
    quant.add_argument("--load-in-8bit", action="store_true", help="8-bit (bitsandbytes)")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "mps", "cpu"))
    p.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"))
    p.add_argument("--revision", default=None, help="hub branch, tag or commit")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model repo's own Python code (only if you trust it)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_models_check)
