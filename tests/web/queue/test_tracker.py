"""web.queue.tracker.Tracker: the follow state machine, fed by hand (no Redis): what the user sees for each thing the
watcher reports, and the time-driven endings."""

from common.errors import ErrorCode
from common.events import JobEvent
from common.schemas import ChatRequest, JobResult, JobState, JobStatus, MediaRef
from web.queue.tracker import NO_WORKER, Outage, QueueStatus, Recovered, Tracker

REQ = ChatRequest(media=MediaRef(path="uploads/a.png", kind="image"), question="q")


def event(type_: str, text: str = "", result: JobResult | None = None) -> JobEvent:
    return JobEvent("1-0", type_, text, len(text), 0.0, result.model_dump_json() if result else "")


def done(**kw) -> JobResult:
    return JobResult(job_id=REQ.job_id, kind="chat", status=JobStatus.ok, answer="ответ", **kw)


def test_queued_then_running_then_done():
    tr = Tracker(REQ, wait_s=60, grace_s=30, now=0)
    (u,) = tr.feed(QueueStatus(position=2, waiting=3, workers=1, eta_s=40.0), now=1)
    assert (u.state, u.position, u.workers, u.eta_s) == (JobState.queued, 2, 1, 40.0)
    assert tr.feed(QueueStatus(2, 3, 1, 40.2), now=1.5) == []  # nothing new to say: no update
    (u,) = tr.feed(event("started", "worker-1"), now=2)
    assert u.state == JobState.running and u.text == ""
    assert tr.feed(QueueStatus(1, 1, 1, 10.0), now=2.5) == []  # started: the queue no longer matters
    (u,) = tr.feed(event("partial", "отв"), now=3)
    assert u.state == JobState.running and u.text == "отв"
    (u,) = tr.feed(event("done", result=done()), now=4)
    assert u.state == JobState.done and u.result.answer == "ответ" and tr.done
    assert tr.feed(event("partial", "late"), now=5) == []  # after the end: ignored


def test_a_result_found_without_its_done_event_ends_it_too():
    tr = Tracker(REQ, wait_s=60, grace_s=30, now=0)
    (u,) = tr.feed(done(), now=1)
    assert u.result.status == JobStatus.ok and tr.done


def test_no_worker_in_time_is_overdue_but_not_while_redis_is_away():
    tr = Tracker(REQ, wait_s=10, grace_s=30, now=0)
    assert not tr.overdue(5) and tr.overdue(11)
    tr.feed(Outage(since=10.5), now=10.5)
    assert not tr.overdue(12)  # an outage is not "no worker"
    tr.feed(Recovered(), now=13)
    assert tr.overdue(13)
    res = tr.no_worker()
    assert (res.status, res.error, res.error_code) == (JobStatus.error, NO_WORKER.format(s=10), ErrorCode.no_worker)
    tr.feed(event("started"), now=14)
    assert not tr.overdue(100)  # a worker took it: never withdrawn


def test_an_outage_is_said_once_and_ends_the_job_only_past_the_grace():
    tr = Tracker(REQ, wait_s=600, grace_s=30, now=0)
    tr.feed(event("partial", "абв"), now=1)
    (u,) = tr.feed(Outage(since=2), now=2)
    assert u.reconnecting and u.state == JobState.running and u.text == "абв"  # the text so far stays
    assert tr.feed(None, now=20) == []
    (u,) = tr.feed(Recovered(), now=25)
    assert not u.reconnecting and u.state == JobState.running
    tr.feed(Outage(since=30), now=30)
    (u,) = tr.feed(None, now=61)
    assert u.result.status == JobStatus.error and "Очередь недоступна" in u.result.error
    assert u.result.error_code == ErrorCode.queue_unavailable


def test_a_queued_job_is_checked_for_a_lost_message_periodically_and_soon_after_an_outage():
    tr = Tracker(REQ, wait_s=600, grace_s=30, now=0, verify_every_s=30)
    assert not tr.verify_due(29) and tr.verify_due(30)
    tr.verify_at = 60  # JobClient.resend_if_lost schedules the next look
    tr.feed(Outage(since=40), now=40)
    assert not tr.verify_due(59)  # not while Redis is away
    tr.feed(Recovered(), now=41)
    assert not tr.verify_due(41 + Tracker.SETTLE_S - 0.1) and tr.verify_due(41 + Tracker.SETTLE_S)
    tr.feed(event("started"), now=44)
    assert not tr.verify_due(1000)  # a worker has it: its message is no longer the broker's
