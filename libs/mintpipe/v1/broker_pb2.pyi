import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mintpipe.v1 import jobs_pb2 as _jobs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
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
    __slots__ = ("event_id", "job_id", "stage", "progress", "error", "assets", "token_uri", "occurred_at", "source", "attempt", "retry_in_s", "replica", "mint")
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
    MINT_FIELD_NUMBER: _ClassVar[int]
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
    mint: MintFact
    def __init__(self, event_id: _Optional[str] = ..., job_id: _Optional[str] = ..., stage: _Optional[_Union[_jobs_pb2.Stage, str]] = ..., progress: _Optional[int] = ..., error: _Optional[str] = ..., assets: _Optional[_Union[_jobs_pb2.JobAssets, _Mapping]] = ..., token_uri: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ..., attempt: _Optional[int] = ..., retry_in_s: _Optional[int] = ..., replica: _Optional[str] = ..., mint: _Optional[_Union[MintFact, _Mapping]] = ...) -> None: ...

class MintFact(_message.Message):
    __slots__ = ("kind", "token_id", "tx_hash", "block", "block_hash", "wallet", "code", "http_status", "field")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[MintFact.Kind]
        KIND_MINTED: _ClassVar[MintFact.Kind]
        KIND_UNDONE: _ClassVar[MintFact.Kind]
        KIND_RELAY_SENT: _ClassVar[MintFact.Kind]
        KIND_RELAY_FAILED: _ClassVar[MintFact.Kind]
    KIND_UNSPECIFIED: MintFact.Kind
    KIND_MINTED: MintFact.Kind
    KIND_UNDONE: MintFact.Kind
    KIND_RELAY_SENT: MintFact.Kind
    KIND_RELAY_FAILED: MintFact.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    WALLET_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    kind: MintFact.Kind
    token_id: str
    tx_hash: str
    block: int
    block_hash: str
    wallet: str
    code: str
    http_status: int
    field: str
    def __init__(self, kind: _Optional[_Union[MintFact.Kind, str]] = ..., token_id: _Optional[str] = ..., tx_hash: _Optional[str] = ..., block: _Optional[int] = ..., block_hash: _Optional[str] = ..., wallet: _Optional[str] = ..., code: _Optional[str] = ..., http_status: _Optional[int] = ..., field: _Optional[str] = ...) -> None: ...

class RelayRequest(_message.Message):
    __slots__ = ("job_id", "wallet", "token_uri", "request_id", "requested_at", "sweep")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    WALLET_FIELD_NUMBER: _ClassVar[int]
    TOKEN_URI_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    SWEEP_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    wallet: str
    token_uri: str
    request_id: str
    requested_at: _timestamp_pb2.Timestamp
    sweep: bool
    def __init__(self, job_id: _Optional[str] = ..., wallet: _Optional[str] = ..., token_uri: _Optional[str] = ..., request_id: _Optional[str] = ..., requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sweep: _Optional[bool] = ...) -> None: ...
