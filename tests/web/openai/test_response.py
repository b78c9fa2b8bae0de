"""The OpenAI API's error table: every kind of error a job or a request can end with has its HTTP status and
OpenAI error type, so no error ever reaches a caller as an unplanned 500."""

from __future__ import annotations

from common.errors import ErrorCode, UserError
from common.schemas import JobKind, JobResult, JobStatus
from web.openai.response import STATUS, TYPE, ApiCode, ApiError


def test_every_error_code_has_a_status_and_an_error_type():
    assert set(STATUS) == {*ErrorCode, *ApiCode}
    assert {status for status in STATUS.values()} <= set(TYPE)


def test_a_failed_job_is_answered_with_its_codes_status():
    for code in ErrorCode:
        result = JobResult(job_id="j", kind=JobKind.chat, status=JobStatus.error, error="сбой", error_code=code)
        error = ApiError.of_result(result)
        assert (error.status, error.body()["error"]["code"]) == (STATUS[code], code)
    assert ApiError.of_result(JobResult(job_id="j", kind=JobKind.chat, status=JobStatus.error)).status == 500


def test_retry_advice_only_for_what_passes():
    plain, down = ApiError.of(UserError("x")), ApiError("y", ErrorCode.queue_unavailable)
    assert plain.headers() == {"x-should-retry": "false"}
    assert down.headers() == {"x-should-retry": "true", "Retry-After": "5"}
    assert ApiError("z", ErrorCode.busy).status == 429 and ApiError("k", ApiCode.invalid_api_key).status == 401
