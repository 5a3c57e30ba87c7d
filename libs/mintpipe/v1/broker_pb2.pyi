import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mintpipe.v1 import jobs_pb2 as _jobs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RenderJob(_message.Message):
    __slots__ = ("job_id", "scene", "settings_json", "wallet", "submitted_at")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SCENE_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_JSON_FIELD_NUMBER: _ClassVar[int]
    WALLET_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    scene: str
    settings_json: str
    wallet: str
    submitted_at: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., scene: _Optional[str] = ..., settings_json: _Optional[str] = ..., wallet: _Optional[str] = ..., submitted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ArtifactRef(_message.Message):
    __slots__ = ("kind", "key", "content_type", "size", "sha256")
    KIND_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    kind: str
    key: str
    content_type: str
    size: int
    sha256: str
    def __init__(self, kind: _Optional[str] = ..., key: _Optional[str] = ..., content_type: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class PinJob(_message.Message):
    __slots__ = ("job_id", "scene", "settings_json", "wallet", "artifacts", "renderer_version", "settings_hash")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SCENE_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_JSON_FIELD_NUMBER: _ClassVar[int]
    WALLET_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    RENDERER_VERSION_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_HASH_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    scene: str
    settings_json: str
    wallet: str
    artifacts: _containers.RepeatedCompositeFieldContainer[ArtifactRef]
    renderer_version: str
    settings_hash: str
    def __init__(self, job_id: _Optional[str] = ..., scene: _Optional[str] = ..., settings_json: _Optional[str] = ..., wallet: _Optional[str] = ..., artifacts: _Optional[_Iterable[_Union[ArtifactRef, _Mapping]]] = ..., renderer_version: _Optional[str] = ..., settings_hash: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("event_id", "job_id", "stage", "progress", "error", "assets", "token_uri", "occurred_at", "source", "attempt", "retry_in_s", "replica")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ASSETS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_URI_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RETRY_IN_S_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    job_id: str
    stage: _jobs_pb2.Stage
    progress: int
    error: str
    assets: _jobs_pb2.JobAssets
    token_uri: str
    occurred_at: _timestamp_pb2.Timestamp
    source: str
    attempt: int
    retry_in_s: int
    replica: str
    def __init__(self, event_id: _Optional[str] = ..., job_id: _Optional[str] = ..., stage: _Optional[_Union[_jobs_pb2.Stage, str]] = ..., progress: _Optional[int] = ..., error: _Optional[str] = ..., assets: _Optional[_Union[_jobs_pb2.JobAssets, _Mapping]] = ..., token_uri: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ..., attempt: _Optional[int] = ..., retry_in_s: _Optional[int] = ..., replica: _Optional[str] = ...) -> None: ...
