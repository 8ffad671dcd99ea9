"""adapters.breaker: closed -> open -> half-open -> closed (or open again), on a fake clock."""

from __future__ import annotations

from adapters.breaker import CLOSED, HALF_OPEN, OPEN, Breakers

KEY = "http://models.test:8000/m/predict"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(breakers: Breakers, key: str = KEY) -> None:
    admission = breakers.admit(key)
    assert admission.refused is None
    breakers.done(key, admission, False)


def test_closed_until_the_threshold_of_consecutive_failures() -> None:
    clock = Clock()
    breakers = Breakers(threshold=3, cooldown=30.0, clock=clock)
    fail(breakers)
    fail(breakers)
    state = breakers.state(KEY)
    assert (state.state, state.failures) == (CLOSED, 2)
    assert state.describe() == "closed (2 failures)"
    assert breakers.not_closed() == {}
    fail(breakers)
    state = breakers.state(KEY)
    assert (state.state, state.failures, state.retry_in_s) == (OPEN, 3, 30.0)
    assert state.describe() == "open (3 failures; next try in 30s)"
    assert breakers.state("http://other:80/p").state == CLOSED  # per endpoint


def test_a_success_ends_the_run_of_failures() -> None:
    breakers = Breakers(threshold=2, cooldown=30.0, clock=Clock())
    fail(breakers)
    admission = breakers.admit(KEY)
    breakers.done(KEY, admission, True)
    fail(breakers)
    assert breakers.state(KEY).state == CLOSED  # 1 failure since the success, not 2


def test_open_refuses_then_half_open_lets_one_probe_through_and_success_closes() -> None:
    clock = Clock()
    breakers = Breakers(threshold=2, cooldown=30.0, clock=clock)
    fail(breakers)
    fail(breakers)
    clock.now += 10
    refused = breakers.admit(KEY).refused
    assert refused is not None and refused.state == OPEN and refused.retry_in_s == 20.0
    assert breakers.not_closed()[KEY].to_dict() == {
        "state": "open",
        "failures": 2,
        "retry_in_s": 20.0,
    }

    clock.now += 20  # the cool-down is over
    assert breakers.state(KEY).state == HALF_OPEN
    probe = breakers.admit(KEY)
    assert probe.refused is None and probe.probe
    other = breakers.admit(KEY)  # while the probe is in flight, the rest still fail fast
    assert other.refused is not None and other.refused.state == HALF_OPEN
    assert other.refused.describe() == "half-open (2 failures; a probe call is in flight)"
    breakers.done(KEY, probe, True)
    assert breakers.state(KEY).state == CLOSED and breakers.state(KEY).failures == 0
    assert breakers.admit(KEY).refused is None
    assert breakers.not_closed() == {}


def test_a_failed_probe_opens_for_another_cool_down() -> None:
    clock = Clock()
    breakers = Breakers(threshold=1, cooldown=5.0, clock=clock)
    fail(breakers)
    clock.now += 5
    probe = breakers.admit(KEY)
    assert probe.probe
    breakers.done(KEY, probe, False)
    state = breakers.state(KEY)
    assert (state.state, state.failures, state.retry_in_s) == (OPEN, 2, 5.0)
    clock.now += 4.9
    assert breakers.admit(KEY).refused is not None


def test_a_probe_without_verdict_frees_the_slot() -> None:
    """A cancelled probe (client gone) or one refused for the user's mistake (4xx) must not
    leave the breaker waiting for a verdict forever."""
    clock = Clock()
    breakers = Breakers(threshold=1, cooldown=5.0, clock=clock)
    fail(breakers)
    clock.now += 5
    probe = breakers.admit(KEY)
    breakers.done(KEY, probe, None)
    assert breakers.state(KEY).state == HALF_OPEN
    assert breakers.state(KEY).describe() == "half-open (1 failure; the next call probes)"
    assert breakers.admit(KEY).probe


def test_threshold_zero_never_opens() -> None:
    breakers = Breakers(threshold=0, cooldown=5.0, clock=Clock())
    for _ in range(20):
        fail(breakers)
    assert breakers.state(KEY).state == CLOSED


def test_a_late_failure_of_an_older_call_does_not_extend_the_cool_down() -> None:
    clock = Clock()
    breakers = Breakers(threshold=1, cooldown=10.0, clock=clock)
    early = breakers.admit(KEY)  # admitted while closed, still running
    fail(breakers)  # opens at t=1000
    clock.now += 8
    breakers.done(KEY, early, False)
    assert breakers.state(KEY).retry_in_s == 2.0
    assert breakers.state(KEY).failures == 2
