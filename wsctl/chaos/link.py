"""One direction of one proxied connection, and the chain of faults it runs through.

With no fault active a link is a plain relay: the reading socket's ``data_received`` is
``Link.relay``, which writes each chunk to the other side first and only then counts it
and follows the WebSocket frame boundaries (a few integer operations, off the latency
path). Each active fault is a stage: a queue and a task running the fault's coroutine;
while there is one, ``data_received`` is ``Link.feed``, which queues. Stages are added
and removed on live connections; a removed stage forwards what it holds, then its queue,
so no byte is lost or reordered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import TYPE_CHECKING, Any, Protocol

from wsctl.chaos.faults.base import Chunk, FaultSpec
from wsctl.chaos.frames import HANDSHAKE, OPAQUE, FrameSplitter, FrameTracker
from wsctl.clock import Clock

if TYPE_CHECKING:
    from websockets.frames import Frame

log = logging.getLogger(__name__)

QUEUE_HIGH = 256  # chunks waiting in front of the first fault before the source is paused
QUEUE_LOW = 64


class LinkOwner(Protocol):
    """What a link needs from its connection."""

    def close(self) -> None: ...

    def reset(self) -> None: ...

    def link_finished(self, link: Link) -> None: ...

    def applied(self, fault_type: str) -> None: ...

    def track(self, task: asyncio.Task[Any]) -> None: ...


class Link:
    """Bytes from ``source`` to ``dest`` through zero or more fault stages."""

    def __init__(
        self,
        direction: str,
        owner: LinkOwner,
        source: asyncio.Transport,
        dest: asyncio.Transport,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self.direction = direction
        self.owner = owner
        self.source = source
        self.dest = dest
        self.clock = clock
        self.random = rng
        self.tracker = FrameTracker(direction == "upstream")
        self.stages: list[Stage] = []
        self.peer: Link | None = None  # the other direction of the same connection
        self.bytes = 0
        self.finished = False  # EOF has been written to dest
        self._paused: set[str] = set()
        self._receiver: asyncio.Protocol | None = None  # the protocol reading source

    def attach(self, receiver: asyncio.Protocol) -> None:
        """Route what ``receiver`` (the protocol of ``source``) reads into this link."""
        self._receiver = receiver
        self._route()

    def _route(self) -> None:
        """Point the receiver's ``data_received`` at the plain relay, or at the stages."""
        receiver = self._receiver
        if receiver is None or self.source.is_closing():
            return
        receiver.data_received = self.feed if self.stages else self.relay  # type: ignore[method-assign]
        # uvloop keeps the bound method it found when the protocol was set: set it again.
        self.source.set_protocol(receiver)

    # -- data path -------------------------------------------------------------------

    def relay(self, data: bytes) -> None:
        """Bytes read from the source, no fault active: write first, then account."""
        dest = self.dest
        if dest.is_closing():
            return
        dest.write(data)
        self.bytes += len(data)
        tracker = self.tracker
        if tracker.mode != OPAQUE:
            tracker.feed(data)

    def feed(self, data: bytes) -> None:
        """Bytes read from the source."""
        if self.stages:
            queue = self.stages[0].queue
            queue.put_nowait(Chunk(data, self.clock.now()))
            if queue.qsize() >= QUEUE_HIGH:
                self.pause("queue")
        else:
            self._write(data)

    def feed_eof(self) -> None:
        """The source sent FIN."""
        if self.stages:
            self.stages[0].queue.put_nowait(None)
        else:
            self._write_eof()

    def _write(self, data: bytes) -> None:
        if self.finished:
            return
        self.relay(data)

    def _write_eof(self) -> None:
        if self.finished:
            return
        self.finished = True
        if not self.dest.is_closing():
            try:
                if self.dest.can_write_eof():
                    self.dest.write_eof()
                else:  # pragma: no cover - TCP transports can always half-close
                    self.dest.close()
            except OSError:
                # The peer is already gone (reset while a fault held data): nothing is
                # left to half-close, so close instead of raising out of a callback.
                self.dest.close()
        self.owner.link_finished(self)

    def _deliver(self, index: int, item: Chunk | None) -> None:
        """Hand ``item`` to the stage at ``index``, or to the destination past the last."""
        if index < len(self.stages):
            self.stages[index].queue.put_nowait(item)
        elif item is None:
            self._write_eof()
        else:
            self._write(item.data)

    # -- flow control ----------------------------------------------------------------

    def pause(self, reason: str) -> None:
        if not self._paused and not self.source.is_closing():
            self.source.pause_reading()
        self._paused.add(reason)

    def resume(self, reason: str) -> None:
        if reason not in self._paused:
            return
        self._paused.discard(reason)
        if not self._paused and not self.source.is_closing():
            self.source.resume_reading()

    # -- stages ----------------------------------------------------------------------

    def add(self, name: str, fault_type: str, spec: FaultSpec, config: Any) -> Stage:
        """Start a fault at the end of the chain."""
        stage = Stage(self, name, fault_type, spec, config)
        self.stages.append(stage)
        if len(self.stages) == 1:
            self._route()
        self.owner.applied(fault_type)
        stage.task = asyncio.get_running_loop().create_task(self._run(stage))
        self.owner.track(stage.task)
        return stage

    def has(self, name: str) -> bool:
        return any(stage.name == name for stage in self.stages)

    async def remove(self, name: str) -> None:
        """Stop a fault; what it held and what queued up behind it is passed on, in order."""
        for stage in self.stages:
            if stage.name == name:
                break
        else:
            return
        task = stage.task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._splice(stage)

    def cancel_all(self) -> None:
        """The connection is gone: stop every stage without forwarding anything."""
        for stage in self.stages:
            if stage.task is not None:
                stage.task.cancel()
        self.stages.clear()

    async def _run(self, stage: Stage) -> None:
        try:
            await stage.spec.run(stage.config, stage.stub)
        except asyncio.CancelledError:
            raise
        except Exception:  # a broken fault must not take the proxy down
            log.exception("fault %s failed; passing data through", stage.name)
        self._splice(stage)

    def _splice(self, stage: Stage) -> None:
        if stage not in self.stages:
            return
        index = self.stages.index(stage)
        items: list[Chunk | None] = [item for item in stage.stub.held if item is not None]
        splitter = stage.stub.splitter
        if splitter is not None and (rest := splitter.pending()):
            items.append(Chunk(rest, self.clock.now()))
        if None in stage.stub.held:
            items.append(None)
        while not stage.queue.empty():
            items.append(stage.queue.get_nowait())
        del self.stages[index]
        for item in items:
            self._deliver(index, item)
        if not self.stages:
            self._route()
        if index == 0:
            self.resume("queue")


class Stage:
    """One fault running on one link."""

    def __init__(
        self, link: Link, name: str, fault_type: str, spec: FaultSpec, config: Any
    ) -> None:
        self.name = name
        self.fault_type = fault_type
        self.spec = spec
        self.config = config
        self.queue: asyncio.Queue[Chunk | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.stub = LinkStub(link, self, spec.layer == "websocket")


class LinkStub:
    """The ``Stub`` a fault runs against (see ``wsctl.chaos.faults.base.Stub``)."""

    def __init__(self, link: Link, stage: Stage, websocket: bool) -> None:
        self._link = link
        self._stage = stage
        self.clock = link.clock
        self.random = link.random
        self.direction = link.direction
        self.held: list[Chunk | None] = []
        self.splitter = FrameSplitter(link.tracker.snapshot()) if websocket else None

    async def get(self, timeout: float | None = None) -> Chunk | None:
        self.held = []
        queue = self._stage.queue
        if not queue.empty():
            item = queue.get_nowait()
        elif timeout is None:
            item = await queue.get()  # cancellation-safe: an untaken item stays queued
        else:
            item = await self._get_within(queue, timeout)
        self.held = [item]
        link = self._link
        if link.stages and link.stages[0] is self._stage and queue.qsize() <= QUEUE_LOW:
            link.resume("queue")
        return item

    async def _get_within(self, queue: asyncio.Queue[Chunk | None], timeout: float) -> Chunk | None:
        getter = asyncio.ensure_future(queue.get())
        # If we are cancelled just after the getter took an item, the item is held, not lost.
        getter.add_done_callback(self._took)
        sleeper = asyncio.ensure_future(self.clock.sleep(timeout))
        try:
            await asyncio.wait({getter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (getter, sleeper):
                if not task.done():
                    task.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        raise TimeoutError

    def _took(self, getter: asyncio.Future[Chunk | None]) -> None:
        if not getter.cancelled():
            self.held = [getter.result()]

    def send(self, item: Chunk | None) -> None:
        self.held = []
        link = self._link
        index = link.stages.index(self._stage) + 1
        if item is None and self.splitter is not None and (rest := self.splitter.pending()):
            link._deliver(index, Chunk(rest, self.clock.now()))  # a partial frame, at EOF
        link._deliver(index, item)

    def split(self, chunk: Chunk) -> list[tuple[bytes, Frame | None]]:
        self.held = []
        if self.splitter is None:
            self.splitter = FrameSplitter(self._link.tracker.snapshot())
        return self.splitter.feed(chunk.data)

    def at_frame_boundary(self) -> bool:
        if self.splitter is None:
            self.splitter = FrameSplitter(self._link.tracker.snapshot())
        peer = self._link.peer
        return self.splitter.at_boundary() and (peer is None or peer.tracker.mode != HANDSHAKE)

    def close(self) -> None:
        self._link.owner.close()

    def reset(self) -> None:
        self._link.owner.reset()

    def applied(self) -> None:
        self._link.owner.applied(self._stage.fault_type)
