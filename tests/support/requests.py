"""One example of every node-manager request (the protocol's operations), for round trips
and the rights matrix."""

from __future__ import annotations

from nodemanager.proto import messages as m
from seattlecore import KeyPair

KEY = KeyPair.generate().public
"""The key that ChangeOwner and ChangeUsers name."""

EXAMPLES: list[m.Request] = [
    m.GetVessels(), m.GetVesselResources(vessel="v1"), m.GetOffcutResources(),
    m.GetNodeStatus(), m.DialBack(token=bytes(range(16))),
    m.StartVessel(vessel="v1", program="a.py", args=("x", "y")),
    m.StopVessel(vessel="v1"), m.ResetVessel(vessel="v1"),
    m.AddFileToVessel(vessel="v1", filename="a.py", data=b"\x00\xff"),
    m.RetrieveFileFromVessel(vessel="v1", filename="a.py"), m.ListFilesInVessel(vessel="v1"),
    m.DeleteFileInVessel(vessel="v1", filename="a.py"), m.ReadVesselLog(vessel="v1"),
    m.ChangeOwner(vessel="v1", owner=KEY), m.ChangeUsers(vessel="v1", users=(KEY,)),
    m.ChangeOwnerInformation(vessel="v1", info="hello"),
    m.ChangeAdvertise(vessel="v1", advertise=False),
    m.SplitVessel(vessel="v1", resources="resource cpu 0.1\n"),
    m.JoinVessels(vessel1="v1", vessel2="v2"),
    m.Batch(calls=(m.ListFilesInVessel(vessel="v1"),)),
    m.AcquireVessel(vessel="v1", credential=b"\x93", consent=bytes(64), lease=60.0),
    m.RenewLease(vessel="v1", lease=None), m.ReleaseVessel(vessel="v1"),
    m.OpenSession(eph=bytes(range(1, 33))),
]
