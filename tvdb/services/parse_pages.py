"""How a parse job's outcome becomes a document or an error, for the real client and the fault wrapper alike.

- `job_failed_error`: a FAILED job → ParseJobError, `encrypted` when the service says
  `PDF_IS_PROTECTED`, `corrupt` when it says `UNREADABLE_DOCUMENT` (so a damaged PDF fails as it
  does in mock mode), else `service_error` with the service's message.
- `fail_pages`: pages the service could not parse become empty pages with a warning each, unless
  more than `max_page_failure_ratio` of the document failed (then `partial_parse`).
"""

from __future__ import annotations

from dataclasses import replace

from tvdb.domain import Page, ParsedDocument
from tvdb.errors import ErrorCode, ParseJobError

PROTECTED_CODE = "PDF_IS_PROTECTED"
UNREADABLE_CODE = "UNREADABLE_DOCUMENT"
# the service's code in `error_message` → (the job's error code, how the message says it, the error's `code`)
_KNOWN = {
    PROTECTED_CODE: (ErrorCode.ENCRYPTED, "password protected", PROTECTED_CODE),
    UNREADABLE_CODE: (ErrorCode.CORRUPT,
                      "is unreadable, damaged or truncated (check that it opens, or export it again)", UNREADABLE_CODE),
}


def job_failed_error(
    service: str, message: str, *, filename: str, job_id: str, billed_units: float | None = None,
) -> ParseJobError:
    """The error for a job that ended FAILED with `message` (the service's `error_message`)."""
    code, what, service_code = next((v for k, v in _KNOWN.items() if k in message),
                                    (ErrorCode.SERVICE_ERROR, "FAILED", "job_failed"))
    return ParseJobError(
        f"{service}: parse job {job_id} for {filename} {what}: {message}", error_code=code, service=service,
        code=service_code, request_id=job_id, billed_units=billed_units,
    )


def fail_pages(
    document: ParsedDocument, failed: dict[int, str], max_ratio: float, filename: str, *,
    service: str = "llamaparse", job_id: str | None = None, billed_units: float | None = None,
) -> ParsedDocument:
    """`document` with the pages in `failed` (number → the service's error) emptied and warned about.

    Raises ParseJobError(partial_parse) when failed pages / all pages > `max_ratio`.
    """
    if not failed:
        return document
    total = max(1, len(document.pages))
    if len(failed) / total > max_ratio:
        numbers = ", ".join(str(n) for n in sorted(failed))
        raise ParseJobError(
            f"{service}: {len(failed)} of {total} pages of {filename} failed to parse (pages {numbers}; "
            f"parse.max_page_failure_ratio is {max_ratio:g})" + (f" in job {job_id}" if job_id else ""),
            error_code=ErrorCode.PARTIAL_PARSE, service=service, code="partial_parse", request_id=job_id,
            billed_units=billed_units,
        )
    pages = tuple(Page(p.number, "") if p.number in failed else p for p in document.pages)
    notes = [f"page {n}: not parsed ({failed[n]})" for n in sorted(failed)]
    return replace(document, pages=pages, warnings=(*document.warnings, *notes))
