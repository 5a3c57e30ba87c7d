from mintpipe.v1 import jobs_pb2 as _jobs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("wallet", "stage", "limit", "cursor")
    WALLET_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    wallet: str
    stage: _jobs_pb2.Stage
    limit: int
    cursor: str
    def __init__(self, wallet: _Optional[str] = ..., stage: _Optional[_Union[_jobs_pb2.Stage, str]] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_cursor")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[_jobs_pb2.Job]
    next_cursor: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[_jobs_pb2.Job, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id", "until_minted")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    UNTIL_MINTED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    until_minted: bool
    def __init__(self, job_id: _Optional[str] = ..., until_minted: _Optional[bool] = ...) -> None: ...

class ReserveJobRequest(_message.Message):
    __slots__ = ("idempotency_key", "request_hash", "wallet", "scene", "settings_json")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_HASH_FIELD_NUMBER: _ClassVar[int]
    WALLET_FIELD_NUMBER: _ClassVar[int]
    SCENE_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_JSON_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    request_hash: str
    wallet: str
    scene: str
    settings_json: str
    def __init__(self, idempotency_key: _Optional[str] = ..., request_hash: _Optional[str] = ..., wallet: _Optional[str] = ..., scene: _Optional[str] = ..., settings_json: _Optional[str] = ...) -> None: ...

class ReserveJobResponse(_message.Message):
    __slots__ = ("job", "created", "published")
    JOB_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    job: _jobs_pb2.Job
    created: bool
    published: bool
    def __init__(self, job: _Optional[_Union[_jobs_pb2.Job, _Mapping]] = ..., created: _Optional[bool] = ..., published: _Optional[bool] = ...) -> None: ...

class ReserveJobsRequest(_message.Message):
    __slots__ = ("reservations",)
    RESERVATIONS_FIELD_NUMBER: _ClassVar[int]
    reservations: _containers.RepeatedCompositeFieldContainer[ReserveJobRequest]
    def __init__(self, reservations: _Optional[_Iterable[_Union[ReserveJobRequest, _Mapping]]] = ...) -> None: ...

class ReserveOutcome(_message.Message):
    __slots__ = ("reserved", "code", "details")
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    reserved: ReserveJobResponse
    code: int
    details: str
    def __init__(self, reserved: _Optional[_Union[ReserveJobResponse, _Mapping]] = ..., code: _Optional[int] = ..., details: _Optional[str] = ...) -> None: ...

class ReserveJobsResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[ReserveOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[ReserveOutcome, _Mapping]]] = ...) -> None: ...

class MarkPublishedRequest(_message.Message):
    __slots__ = ("job_id", "job_ids")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    job_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, job_id: _Optional[str] = ..., job_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class MarkPublishedResponse(_message.Message):
    __slots__ = ("batched", "unknown_job_ids")
    BATCHED_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    batched: bool
    unknown_job_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, batched: _Optional[bool] = ..., unknown_job_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DiscardJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class DiscardJobResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
