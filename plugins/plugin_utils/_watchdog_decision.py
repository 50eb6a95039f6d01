# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the launch watchdog does after each look around: keep watching, roll back, or leave quietly.

Pure: the watchdog process observes (is ansible-playbook alive, was I disarmed, what does the mirror say)
and this module decides. The order of the rules is the design:

1. disarmed (the launch ended as planned, or a newer watchdog took over) -> leave, whatever else is true;
2. the ansible-playbook process is gone -> roll back (the run was interrupted before its own rescue ran);
3. the mirror was seen and is now gone -> leave (someone already tore the launch down);
4. the launch record, once this launch's, now names another launch -> leave (a rerun, maybe from another
   machine, took the route over; rolling back would break its launch);
5. this launch's record is past its deadline by more than ``grace_seconds`` -> roll back (the controller
   is alive but stuck: it stopped renewing the record);
6. otherwise keep watching. An unreadable mirror (API error) is never a reason to act: only the
   controller's own disappearance is certain enough to act on without the cluster's word.

Whose record: the one with this launch's id when the watchdog was given one; without an id, a record
whose deadline lies after the moment of arming (a stale deadline left by an earlier, interrupted run is
not this run's, and the run renews it at its first write).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone


class MirrorSeen(enum.Enum):
    PRESENT = "present"
    ABSENT = "absent"
    UNKNOWN = "unknown"  # the read failed; say nothing about the mirror


class Verdict(enum.Enum):
    WATCH = "watch"
    ROLL_BACK = "roll_back"
    LEAVE = "leave"


@dataclass(frozen=True)
class Policy:
    grace_seconds: float
    armed_at: datetime
    launch_id: str | None = None


@dataclass(frozen=True)
class Observation:
    now: datetime
    controller_alive: bool
    disarmed: bool
    mirror: MirrorSeen
    mirror_seen_before: bool  # present at some earlier look (the watchdog may be armed before the mirror exists)
    record_id: str | None = None  # the launch record on the mirror: its id and deadline, when it has them
    deadline: datetime | None = None
    own_record_seen_before: bool = False  # an earlier look found this launch's id on the record


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str


def decide(observation: Observation, policy: Policy) -> Decision:
    """The watchdog's next move (see the module docstring for the order of the rules)."""
    if observation.disarmed:
        return Decision(Verdict.LEAVE, "disarmed")
    if not observation.controller_alive:
        return Decision(Verdict.ROLL_BACK, "the ansible-playbook process that armed the watchdog is gone")
    if observation.mirror is MirrorSeen.ABSENT and observation.mirror_seen_before:
        return Decision(Verdict.LEAVE, "the mirror was deleted by someone else; nothing left to roll back")
    if observation.mirror is not MirrorSeen.PRESENT:
        return Decision(Verdict.WATCH, "")
    if taken_over(observation, policy):
        return Decision(
            Verdict.LEAVE,
            f"launch {observation.record_id} took the route over from launch {policy.launch_id}; "
            "it is not ours to roll back",
        )
    if observation.deadline is not None and is_own_record(observation, policy):
        overdue = observation.now - observation.deadline
        if overdue > timedelta(seconds=policy.grace_seconds):
            return Decision(
                Verdict.ROLL_BACK,
                f"the launch record's deadline {format_utc_second(observation.deadline)} passed "
                f"{overdue.total_seconds():.0f}s ago (grace {policy.grace_seconds:g}s): the run stopped renewing it",
            )
    return Decision(Verdict.WATCH, "")


def is_own_record(observation: Observation, policy: Policy) -> bool:
    """Whether the launch record on the mirror is the one this watchdog's run writes."""
    if policy.launch_id is not None:
        return observation.record_id == policy.launch_id
    return observation.deadline is not None and observation.deadline > policy.armed_at


def taken_over(observation: Observation, policy: Policy) -> bool:
    return (
        policy.launch_id is not None
        and observation.own_record_seen_before
        and observation.record_id not in (None, policy.launch_id)
    )


def format_utc_second(moment: datetime) -> str:
    """UTC to the second, for the watchdog's log and state files (the launch record keeps milliseconds)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
