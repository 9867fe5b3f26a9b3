"""``wsctl bench``: open-model connection and message load with HDR latencies and gates."""

from __future__ import annotations
