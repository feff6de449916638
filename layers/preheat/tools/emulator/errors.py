"""Lambda's error shapes: Invoke API errors as boto3 parses them, and function errors."""

from __future__ import annotations

from typing import Any

import orjson


class ApiError(Exception):
    """An Invoke API error response (status, x-amzn-ErrorType, JSON body)."""

    def __init__(
        self, status: int, error_type: str, message: str, message_key: str = "message", **extra: str
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.message_key = message_key
        self.extra = extra

    def body(self) -> bytes:
        return orjson.dumps({"Type": "User", self.message_key: self.message, **self.extra})

    def headers(self) -> dict[str, str]:
        return {"x-amzn-ErrorType": self.error_type, "Content-Type": "application/json"}


def not_found(arn: str) -> ApiError:
    return ApiError(404, "ResourceNotFoundException", f"Function not found: {arn}", "Message")


def too_large(limit: int) -> ApiError:
    # The code AWS actually sends; botocore's model names it differently, so boto3 raises
    # a plain ClientError with this code.
    return ApiError(
        413,
        "RequestEntityTooLargeException",
        f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
    )


def throttled(reserved: bool) -> ApiError:
    reason = (
        "ReservedFunctionConcurrentInvocationLimitExceeded"
        if reserved
        else "ConcurrentInvocationLimitExceeded"
    )
    return ApiError(429, "TooManyRequestsException", "Rate Exceeded.", Reason=reason)


def bad_json(detail: str) -> ApiError:
    return ApiError(
        400,
        "InvalidRequestContentException",
        f"Could not parse request body into json: Could not parse payload into json: {detail}",
    )


def invalid_parameter(message: str) -> ApiError:
    return ApiError(400, "InvalidParameterValueException", message)


def unknown_operation() -> ApiError:
    return ApiError(404, "UnknownOperationException", "Unknown operation")


def function_error(error_type: str, message: str, request_id: str | None = None) -> bytes:
    """The body Lambda returns when the platform, not the handler, failed the invoke."""
    text = f"RequestId: {request_id} Error: {message}" if request_id else message
    payload: dict[str, Any] = {"errorType": error_type, "errorMessage": text}
    return orjson.dumps(payload)


def version_failed(state: str = "Failed") -> ApiError:
    return ApiError(
        409,
        "ResourceConflictException",
        "The operation cannot be performed at this time. "
        f"The function is currently in the following state: {state}",
    )


def alias_not_found(arn: str) -> ApiError:
    return ApiError(404, "ResourceNotFoundException", f"Cannot find alias arn: {arn}", "Message")


def alias_exists(arn: str) -> ApiError:
    return ApiError(409, "ResourceConflictException", f"Alias already exists: {arn}")


def precondition_failed() -> ApiError:
    return ApiError(
        412,
        "PreconditionFailedException",
        "The Revision Id provided does not match the latest Revision Id. "
        "Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
    )


def validation(value: object, member: str, constraint: str) -> ApiError:
    """Lambda's own input validation (botocore checks only lengths and types)."""
    return ApiError(
        400,
        "ValidationException",
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: {constraint}",
    )
