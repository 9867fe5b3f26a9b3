"""The proxy link's edge cases that need no socket."""


def test_eof_to_a_peer_that_is_gone_closes_instead_of_raising():
    """A half-close the kernel refuses (ENOTCONN after a reset) closes the destination."""
    import errno
    import random

    from wsctl.chaos.link import Link
    from wsctl.clock import FakeClock

    class Dest:
        closed = False

        def is_closing(self):
            return self.closed

        def can_write_eof(self):
            return True

        def write_eof(self):
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")

        def close(self):
            self.closed = True

    class Owner:
        finished = []

        def link_finished(self, link):
            self.finished.append(link)

    dest, owner = Dest(), Owner()
    link = Link("downstream", owner, object(), dest, FakeClock(), random.Random(1))  # type: ignore[arg-type]
    link.feed_eof()
    assert dest.closed and owner.finished == [link] and link.finished
