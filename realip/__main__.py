"""Command line: ``python -m realip decode HEX|- [--json]``, ``python -m realip simulate
NAME|TOPOLOGY.yaml [--forge-xff …] [--forge-proxy …] [--json] [--pcap FILE]``, ``python -m
realip scenarios`` and ``python -m realip lab run NAME|TOPOLOGY.yaml [--proxies
python|nginx|haproxy|real|auto] [--forge-xff …] [--json]`` (``lab check``: what this machine
offers the live lab).

A scenario is a bundled name (``python -m realip scenarios`` lists them; ``$REALIP_DATA`` names
another folder of them) or a path.  ``simulate`` checks the scenario's ``expect`` and exits 1
when it does not hold; a scenario that does not validate, or any other realip error, prints
where it is and what is allowed and exits 2 — never a traceback."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from .errors import ConfigurationError, InvalidProxyHeader


def _read_input(arg: str) -> bytes:
    if arg == "-":
        return sys.stdin.buffer.read()
    cleaned = re.sub(r"[\s:]|0x", "", arg)
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise SystemExit(f"realip decode: not hexadecimal: {arg!r} (use '-' to read raw bytes"
                         " from standard input)") from None


def _short_hex(raw: bytes, width: int = 24) -> str:
    text = raw.hex()
    return text if len(text) <= width else text[: width - 1] + "…"


def format_fields(data: bytes, *, version: int | None = None, max_v2_size: int = 4096,
                  verify_crc32c: bool = True) -> str:
    """The annotated field table ``python -m realip decode`` prints."""
    from .proxy_protocol import annotate

    rows = annotate(data, version=version, max_v2_size=max_v2_size, verify_crc32c=verify_crc32c)
    head = f"{'offset':>6} {'len':>4}  {'field':<20} {'bytes':<24}  {'verdict':<10} meaning"
    lines = [head, "-" * len(head)]
    for f in rows:
        lines.append(f"{f.offset:>6} {f.length:>4}  {f.name:<20} {_short_hex(f.raw):<24}  "
                     f"{f.verdict:<10} {f.meaning}")
    return "\n".join(lines)


def _cmd_decode(args: argparse.Namespace) -> int:
    from .proxy_protocol import decode

    data = _read_input(args.data)
    version: int | None = args.only
    max_size: int = args.max_v2_size
    verify = not args.no_crc_check
    if not args.json:
        print(format_fields(data, version=version, max_v2_size=max_size, verify_crc32c=verify))
    try:
        header = decode(data, version=version, max_v2_size=max_size, verify_crc32c=verify)
    except InvalidProxyHeader as exc:
        if args.json:
            print(json.dumps({"error": {"reason": exc.reason.value, "offset": exc.offset,
                                        "message": str(exc)}}, indent=2))
        else:
            print(f"\nrejected: {exc}")
        return 1
    if header is None:
        if args.json:
            print(json.dumps({"incomplete": True, "received": len(data)}, indent=2))
        else:
            print(f"\nincomplete: {len(data)} byte(s) are a valid start of a header; more needed")
        return 2
    if args.json:
        print(json.dumps(header.to_dict(), indent=2))
    else:
        print(f"\naccepted: PROXY v{header.version} {header.command.name} {header.family.name}"
              f" {header.transport.name}, source {header.source or 'real peer'},"
              f" destination {header.destination or 'real local address'},"
              f" {header.size} bytes, {len(data) - header.size} byte(s) of payload follow")
    return 0


def _forged_proxy(text: str) -> bytes:
    """``--forge-proxy``: a v1 line (CRLF added, ``\\r\\n`` escapes understood) or v2 hex."""
    if text.startswith("PROXY"):
        line = text.replace("\\r", "\r").replace("\\n", "\n")
        if not line.endswith("\r\n"):
            line += "\r\n"
        return line.encode("latin-1")
    return _read_input(text)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .topology import check_expect, load_scenario, simulate

    topology = load_scenario(args.path)
    for warning in topology.warnings:
        print(warning, file=sys.stderr)
    forged = None if args.forge_proxy is None else _forged_proxy(args.forge_proxy)
    trace = simulate(topology, forge_xff=args.forge_xff, forge_proxy=forged)
    if args.pcap:
        trace.to_pcap(args.pcap)
    # expect describes the scenario as written: a forged header changes the question
    forging = args.forge_xff is not None or forged is not None
    expectation = None if forging else check_expect(trace)
    if args.json:
        doc = trace.to_dict()
        if forging:
            doc["expect"] = None
        print(json.dumps(doc, indent=2))
    else:
        print(trace.table())
        if expectation is not None:
            print(expectation)
    if expectation is not None:
        return 0 if expectation.ok else 1
    return 0 if trace.connected else 1


def _audit_topology(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The topology to audit: a scenario, or a chain read from the user's own files."""
    import os

    from .importers import chain, read_config
    from .programs import broker_from_config
    from .topology import Broker, Client, load_scenario

    if args.scenario is not None:
        if args.config or args.broker_conf:
            raise ConfigurationError("give a scenario or --config files, not both")
        return load_scenario(args.scenario), []  # a bundled name or a path
    if not args.config:
        raise ConfigurationError("give a scenario (name or YAML) or the proxies' files with "
                                 "--config FILE@ADDR (in the order traffic flows)")
    host, _, port = args.client.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigurationError(f"--client {args.client!r}: give ADDR:PORT (the client)")
    warnings: list[str] = []
    configs = []
    for k, spec in enumerate(args.config):
        path, _, addr = spec.partition("@")
        if not addr and k == 0:
            raise ConfigurationError(f"--config {spec}: say the first proxy's own address "
                                     "(FILE@ADDR); the next ones come from upstream lines")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        imported = read_config(text, filename=os.path.basename(path),
                               name=f"lb{k + 1}", addr=addr or "0.0.0.0",
                               source_port=40000 + k)
        warnings += [f"{os.path.basename(path)}: {w}" for w in imported.warnings]
        configs.append(imported)
    settings: dict[str, Any] = {"kind": args.broker, "listener": args.transport}
    if args.broker == "aedes":  # the Broker's own default version is EMQX's
        from .programs.aedes.config import VERSION

        settings["version"] = VERSION
    if args.broker_conf:
        with open(args.broker_conf, encoding="utf-8") as f:
            text = f.read()
        options: dict[str, Any] = {"filename": os.path.basename(args.broker_conf)}
        if args.broker == "emqx":
            options["listener"] = args.transport
        elif args.broker == "aedes":  # the options say tcp or ws: they must match the client
            options["transport"] = args.transport
        read, more = broker_from_config(args.broker, text, **options)
        settings.update(read)
        warnings += list(more)
    if args.broker_version:
        settings["version"] = args.broker_version
    settings.setdefault("name", args.broker)
    broker = Broker(addr="0.0.0.0", **settings)
    client = Client(addr=host.strip("[]"), port=int(port), transport=args.transport)
    return chain(client, configs, broker, name="your configuration"), warnings


def _cmd_scenarios(args: argparse.Namespace) -> int:
    from .topology import data_dir, load_scenario, scenarios

    names = scenarios()
    if args.json:
        print(json.dumps({"folder": str(data_dir()), "scenarios": list(names)}, indent=2))
        return 0
    for name in names:
        print(f"{name:<34} {load_scenario(name).title}")
    return 0


def _audit_live(report: Any, args: argparse.Namespace) -> int:
    from .lab.live_audit import live_audit

    rows = list(live_audit(report, proxies=args.proxies, broker=args.live_broker))
    out = []
    for lr in rows:
        r = lr.row
        live = lr.live_verdict or "—"
        mark = {True: "✓", False: "✗ DIFFER", None: " "}[lr.agree]
        out.append(f"{r.position.name:<32} {r.attack.name:<22} simulated {r.verdict:<8} "
                   f"live {live:<8} {mark} {lr.note}".rstrip())
    if args.json:
        print(json.dumps([{"position": lr.row.position.name, "attack": lr.row.attack.name,
                           "simulated": lr.row.verdict, "live": lr.live_verdict,
                           "live_recorded": lr.live_recorded, "agree": lr.agree,
                           "note": lr.note, "broker": lr.broker} for lr in rows], indent=2))
    else:
        ran = f", broker: {rows[0].broker}" if rows and rows[0].broker else ""
        print(f"audit of {report.topology.name}, live ({args.proxies}{ran}) beside simulated:")
        print("\n".join(out))
    differ = [lr for lr in rows if lr.agree is False]
    if differ:
        return 4
    return 0 if report.ok else 1


def _cmd_audit(args: argparse.Namespace) -> int:
    from .audit import audit

    # a scenario or file that does not validate, a missing file: main() prints one line, exit 2
    topology, warnings = _audit_topology(args)
    report = audit(topology, reach_inner=args.reach_inner, fix=not args.no_fix)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.live:
        return _audit_live(report, args)
    print(report.to_json() if args.json else report.table(), end="" if not args.json else "\n")
    return 0 if report.ok else 1


def _cmd_lab_run(args: argparse.Namespace) -> int:
    from .errors import RealIPError
    from .lab import Lab

    forged = None if args.forge_proxy is None else _forged_proxy(args.forge_proxy)
    try:
        lab = Lab(args.path, proxies=args.proxies, progress="none" if args.quiet else "text",
                  progress_stream=sys.stderr, broker=args.broker)
        with lab:
            probe = lab.connect(client_id=args.client_id, forge_xff=args.forge_xff,
                                forge_proxy=forged, transport=args.transport,
                                direct=args.direct, port=args.port, at=args.at)
            description = lab.describe()
    except OSError as exc:  # a missing program or address …
        print(f"realip lab: {exc}", file=sys.stderr)
        return 2
    except RealIPError as exc:
        print(_error_block("lab run", exc), file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(probe.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(description)
        print(probe)
    return 0 if probe.agree else 1


def _cmd_lab_check(args: argparse.Namespace) -> int:
    from .lab import missing_loopback
    from .lab.drivers import DRIVERS, PACKAGES, find_program
    from .lab.lab import alias_commands

    report: dict[str, object] = {}
    missing = missing_loopback(["127.0.0.2", "127.0.1.86", "127.0.2.116"])
    report["loopback"] = {"ok": not missing, "missing": missing,
                          "commands": alias_commands(missing)}
    for name in DRIVERS:
        info = find_program(name)
        report[name] = ({"installed": True, "path": info.path, "version": info.version}
                        if info is not None else
                        {"installed": False, "install": f"sudo apt-get install {PACKAGES[name]}"})
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    if missing:
        print("loopback: only 127.0.0.1 — add addresses with:")
        for c in alias_commands(missing):
            print(f"    {c}   (one per address the lab prints)")
    else:
        print("loopback: every 127.x.y.z address works")
    for name in DRIVERS:
        entry = report[name]
        assert isinstance(entry, dict)
        if entry["installed"]:
            print(f"{name}: {entry['version']} ({entry['path']})")
        else:
            print(f"{name}: not installed — {entry['install']} (hops run as python relays)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m realip`` (and the ``realip`` script)."""
    parser = argparse.ArgumentParser(prog="python -m realip", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    dec = sub.add_parser("decode", help="explain a PROXY protocol header field by field")
    dec.add_argument("data", help="the header in hex (spaces and colons allowed), or - for raw"
                     " bytes on standard input")
    dec.add_argument("--json", action="store_true", help="print the decoded header as JSON")
    dec.add_argument("--only", type=int, choices=(1, 2), help="accept only this version")
    dec.add_argument("--max-v2-size", type=int, default=4096, help="cap on a v2 header (bytes)")
    dec.add_argument("--no-crc-check", action="store_true", help="do not verify CRC32C")
    dec.set_defaults(func=_cmd_decode)
    sim = sub.add_parser("simulate", help="play a scenario hop by hop and check its expect "
                         "(exit 1 when it does not hold)")
    sim.add_argument("path", help="a scenario name (see: scenarios) or a YAML file")
    sim.add_argument("--forge-xff", help="the client sends this X-Forwarded-For line instead")
    sim.add_argument("--forge-proxy", help="the client writes this PROXY header itself (a v1 "
                     "line, or v2 in hex)")
    sim.add_argument("--json", action="store_true", help="print the trace as JSON")
    sim.add_argument("--pcap", help="also write every link to this pcap file")
    sim.set_defaults(func=_cmd_simulate)
    lst = sub.add_parser("scenarios", help="list the bundled scenarios (or $REALIP_DATA's)")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_cmd_scenarios)
    aud = sub.add_parser("audit", help="can a client choose the address the broker records? "
                         "every known forgery against a topology, with the fix (exit 1 when "
                         "anything is SPOOFED or DOWN)")
    aud.add_argument("scenario", nargs="?", help="a topology YAML file or a scenario name (or "
                     "give your own files with --config)")
    aud.add_argument("--config", action="append", default=[], metavar="FILE[@ADDR]",
                     help="an nginx.conf or haproxy.cfg, in the order traffic flows; the first "
                     "needs its host's own address (@ADDR)")
    aud.add_argument("--client", default="203.0.113.7:50000", help="the client ADDR:PORT "
                     "(with --config; default 203.0.113.7:50000)")
    aud.add_argument("--transport", choices=("tcp", "ws"), default="tcp",
                     help="MQTT over TCP or WebSocket (with --config)")
    aud.add_argument("--broker", choices=("emqx", "mosquitto", "aedes"), default="emqx",
                     help="the broker kind (with --config)")
    aud.add_argument("--broker-conf", metavar="FILE", help="the broker's own configuration: "
                     "EMQX's HOCON (emqx.conf), mosquitto.conf, or aedes' createServer "
                     "options (JSON or a JavaScript object literal: { trustProxy: true, "
                     "ws: true })")
    aud.add_argument("--broker-version", help="the broker version (by default EMQX 5.7.0, "
                     "Mosquitto 2.1 with --broker-conf, aedes 1.2.0)")
    aud.add_argument("--reach-inner", action="store_true", help="the attacker can also reach "
                     "every inner tier and the broker directly")
    aud.add_argument("--no-fix", action="store_true", help="verdicts only, no fix search")
    aud.add_argument("--json", action="store_true", help="the report as JSON")
    aud.add_argument("--live", action="store_true", help="also run every row through the live "
                     "lab on loopback and print the live verdict beside the simulated one "
                     "(exit 4 when they differ)")
    aud.add_argument("--proxies", default="real", choices=("python", "nginx", "haproxy", "real",
                                                          "auto"),
                     help="what runs the hops with --live (default: the real programs)")
    aud.add_argument("--live-broker", default="auto", choices=("auto", "real", "model"),
                     help="what runs the broker with --live: the real program where the lab "
                     "has a driver for its kind and it is installed (auto, default: aedes), the "
                     "real one or an error (real), or the lab broker playing the model (model)")
    aud.set_defaults(func=_cmd_audit)
    lab = sub.add_parser("lab", help="run a topology on real sockets (loopback addresses)")
    labsub = lab.add_subparsers(dest="lab_command", required=True)
    run = labsub.add_parser("run", help="start a topology, connect a paho-mqtt client from the "
                            "client's address, compare the broker's peername with the "
                            "simulator's (exit 0 when they agree)")
    run.add_argument("path", help="a topology YAML file (or a scenario name)")
    run.add_argument("--proxies", default="python",
                     choices=("python", "nginx", "haproxy", "real", "auto"),
                     help="what runs the hops: python relays (default), real nginx and/or "
                     "HAProxy, or auto (real where installed)")
    run.add_argument("--broker", default="auto", choices=("auto", "real", "model"),
                     help="what runs the broker: the real program where the lab has a driver "
                     "for its kind and it is installed (auto, default: aedes), the real one or "
                     "an error (real), or the lab broker playing the model (model)")
    run.add_argument("--forge-xff", help="the client sends this X-Forwarded-For line instead")
    run.add_argument("--forge-proxy", help="the client writes this PROXY header itself (a v1 "
                     "line, or v2 in hex)")
    run.add_argument("--transport", choices=("tcp", "ws"), help="override the client's transport")
    run.add_argument("--direct", action="store_true", help="dial the broker, past every hop")
    run.add_argument("--at", metavar="NODE", help="dial this hop (or the broker) straight from "
                     "the client's address, past the hops before it (an attacker inside)")
    run.add_argument("--client-id", help="the MQTT client id (default the scenario's)")
    run.add_argument("--port", type=int, help="the client's source port (default the "
                     "scenario's; 0 for any)")
    run.add_argument("--json", action="store_true", help="print peername, predicted and "
                     "addresses as JSON")
    run.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    run.set_defaults(func=_cmd_lab_run)
    chk = labsub.add_parser("check", help="what this machine offers the lab (loopback "
                            "addresses, nginx, HAProxy)")
    chk.add_argument("--json", action="store_true")
    chk.set_defaults(func=_cmd_lab_check)
    args = parser.parse_args(argv)
    from .errors import RealIPError

    command = args.command + (f" {args.lab_command}" if args.command == "lab" else "")
    try:
        result: int = args.func(args)
    except RealIPError as exc:
        print(_error_block(command, exc), file=sys.stderr)
        return 2
    except BrokenPipeError:  # | head
        sys.stderr.close()
        return 0
    except OSError as exc:  # a pcap path that cannot be written, …
        print(f"realip {command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: one line unless asked for the traceback
        if os.environ.get("REALIP_DEBUG"):
            raise
        print(f"realip {command}: internal error {type(exc).__name__}: {exc} (a bug in realip;"
              " REALIP_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 3
    return result


def _error_block(command: str, exc: Exception) -> str:
    """A realip error as the CLI prints it: one line per problem (``file:line:col: path:
    what is wrong (allowed: …)``)."""
    lines = str(exc).splitlines() or [type(exc).__name__]
    if len(lines) == 1:
        return f"realip {command}: {lines[0]}"
    return f"realip {command}: {len(lines)} problems\n" + "\n".join(f"  {x}" for x in lines)


if __name__ == "__main__":
    raise SystemExit(main())
