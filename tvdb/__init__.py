"""tvdb: a test harness for document-ingestion pipelines that pay for external APIs.

`import tvdb` does no I/O and imports no heavy SDK.
"""

__version__ = "0.1.0"
