"""Every fault wsctl chaos knows, in one table.

TCP faults carry Toxiproxy's names, attributes and semantics; WebSocket faults are
wsctl's own and act on whole frames after the opening handshake.
"""

from __future__ import annotations

from wsctl.chaos.faults import (
    bandwidth,
    close,
    cut,
    drop_frames,
    drop_pongs,
    frame_delay,
    latency,
    limit_data,
    reset_peer,
    slicer,
    slow_close,
    timeout,
)
from wsctl.chaos.faults.base import Chunk, FaultSpec, InvalidAttribute, Stub

FAULTS: dict[str, FaultSpec] = {
    "latency": FaultSpec(latency.Latency, latency.run, "tcp", "delay data by latency ± jitter ms"),
    "bandwidth": FaultSpec(bandwidth.Bandwidth, bandwidth.run, "tcp", "limit to rate KB/s"),
    "slow_close": FaultSpec(slow_close.SlowClose, slow_close.run, "tcp", "delay the close"),
    "timeout": FaultSpec(timeout.Timeout, timeout.run, "tcp", "drop data, close after timeout"),
    "reset_peer": FaultSpec(reset_peer.ResetPeer, reset_peer.run, "tcp", "RST after timeout"),
    "slicer": FaultSpec(slicer.Slicer, slicer.run, "tcp", "slice data into small pieces"),
    "limit_data": FaultSpec(limit_data.LimitData, limit_data.run, "tcp", "close after bytes"),
    "drop_pongs": FaultSpec(drop_pongs.DropPongs, drop_pongs.run, "websocket", "drop pongs"),
    "drop_frames": FaultSpec(drop_frames.DropFrames, drop_frames.run, "websocket", "drop data"),
    "frame_delay": FaultSpec(frame_delay.FrameDelay, frame_delay.run, "websocket", "delay frames"),
    "close": FaultSpec(close.Close, close.run, "websocket", "inject a close frame"),
    "cut": FaultSpec(cut.Cut, cut.run, "websocket", "RST now (client sees 1006)"),
}

__all__ = ["FAULTS", "Chunk", "FaultSpec", "InvalidAttribute", "Stub"]
