"""Run one scenario in the live lab inside the private network namespace this process was
started in (``unshare -n python tests/real/_netns_lab.py NAME python|real``), with the
scenario's own addresses on the namespace's ``lo``; print one JSON line per probe (peername and
prediction)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from realip.lab import Lab, netns_setup
from realip.topology import load


def main(name: str, proxies: str) -> None:
    topo = load(str(Path(__file__).resolve().parents[2] / "data" / "topologies" / f"{name}.yaml"))
    plan = netns_setup(topo)
    with Lab(topo, proxies=proxies, progress="none", addresses=plan) as lab:
        probes = [lab.connect()]
        if topo.client.transport == "ws":
            probes.append(lab.connect(forge_xff="6.6.6.6, 127.0.0.1"))
        else:
            probes.append(lab.connect(forge_proxy="PROXY TCP4 6.6.6.6 10.0.0.1 1111 1883\r\n"))
        for p in probes:
            print(json.dumps({"peername": p.peername, "predicted": p.predicted,
                              "notes": list(p.notes), "trace": p.trace.table()}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
