from gateway_app.contract.events import ErrorCode
from gateway_app.providers.errors import from_status


def test_status_table():
    expected = {400: (ErrorCode.PROVIDER_REJECTED, False), 401: (ErrorCode.PROVIDER_AUTH_FAILED, False),
                403: (ErrorCode.PROVIDER_AUTH_FAILED, False), 404: (ErrorCode.PROVIDER_REJECTED, False),
                408: (ErrorCode.PROVIDER_UNAVAILABLE, True), 409: (ErrorCode.PROVIDER_REJECTED, True),
                422: (ErrorCode.PROVIDER_REJECTED, False), 429: (ErrorCode.PROVIDER_RATE_LIMITED, True),
                500: (ErrorCode.PROVIDER_UNAVAILABLE, True), 529: (ErrorCode.PROVIDER_UNAVAILABLE, True)}
    for status, (code, retriable) in expected.items():
        error = from_status(status, "x", {"retry-after-ms": "1500"})
        assert (error.code, error.retriable, error.retry_after) == (code, retriable, 1.5), status
