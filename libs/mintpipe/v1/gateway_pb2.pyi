from mintpipe.v1 import jobs_pb2 as _jobs_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitJobRequest(_message.Message):
    __slots__ = ("scene", "settings_json", "wallet", "idempotency_key")
    SCENE_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_JSON_FIELD_NUMBER: _ClassVar[int]
    WALLET_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    scene: str
    settings_json: str
    wallet: str
    idempotency_key: str
    def __init__(self, scene: _Optional[str] = ..., settings_json: _Optional[str] = ..., wallet: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job_id", "stage", "created")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    stage: _jobs_pb2.Stage
    created: bool
    def __init__(self, job_id: _Optional[str] = ..., stage: _Optional[_Union[_jobs_pb2.Stage, str]] = ..., created: _Optional[bool] = ...) -> None: ...
