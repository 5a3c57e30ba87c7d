import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Stage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGE_UNSPECIFIED: _ClassVar[Stage]
    STAGE_QUEUED: _ClassVar[Stage]
    STAGE_RENDERING: _ClassVar[Stage]
    STAGE_RENDERED: _ClassVar[Stage]
    STAGE_PINNING: _ClassVar[Stage]
    STAGE_PINNED: _ClassVar[Stage]
    STAGE_MINTED: _ClassVar[Stage]
    STAGE_FAILED: _ClassVar[Stage]
STAGE_UNSPECIFIED: Stage
STAGE_QUEUED: Stage
STAGE_RENDERING: Stage
STAGE_RENDERED: Stage
STAGE_PINNING: Stage
STAGE_PINNED: Stage
STAGE_MINTED: Stage
STAGE_FAILED: Stage

class JobAssets(_message.Message):
    __slots__ = ("image", "animation", "preview", "metadata")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ANIMATION_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    image: str
    animation: str
    preview: str
    metadata: str
    def __init__(self, image: _Optional[str] = ..., animation: _Optional[str] = ..., preview: _Optional[str] = ..., metadata: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "stage", "progress", "error", "wallet", "scene", "settings_json", "assets", "token_uri", "created_at", "updated_at", "mint", "token_id", "tx_hash", "block", "minted_at")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    WALLET_FIELD_NUMBER: _ClassVar[int]
    SCENE_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_JSON_FIELD_NUMBER: _ClassVar[int]
    ASSETS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_URI_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    MINT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    MINTED_AT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    stage: Stage
    progress: int
    error: str
    wallet: str
    scene: str
    settings_json: str
    assets: JobAssets
    token_uri: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    mint: MintReady
    token_id: str
    tx_hash: str
    block: int
    minted_at: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., stage: _Optional[_Union[Stage, str]] = ..., progress: _Optional[int] = ..., error: _Optional[str] = ..., wallet: _Optional[str] = ..., scene: _Optional[str] = ..., settings_json: _Optional[str] = ..., assets: _Optional[_Union[JobAssets, _Mapping]] = ..., token_uri: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., mint: _Optional[_Union[MintReady, _Mapping]] = ..., token_id: _Optional[str] = ..., tx_hash: _Optional[str] = ..., block: _Optional[int] = ..., minted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MintVoucher(_message.Message):
    __slots__ = ("to", "token_uri", "job_id", "deadline")
    TO_FIELD_NUMBER: _ClassVar[int]
    TOKEN_URI_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    to: str
    token_uri: str
    job_id: str
    deadline: int
    def __init__(self, to: _Optional[str] = ..., token_uri: _Optional[str] = ..., job_id: _Optional[str] = ..., deadline: _Optional[int] = ...) -> None: ...

class MintTx(_message.Message):
    __slots__ = ("to", "data", "value")
    TO_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    to: str
    data: str
    value: str
    def __init__(self, to: _Optional[str] = ..., data: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class MintReady(_message.Message):
    __slots__ = ("chain_id", "contract", "voucher", "signature", "tx")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    TX_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    contract: str
    voucher: MintVoucher
    signature: str
    tx: MintTx
    def __init__(self, chain_id: _Optional[int] = ..., contract: _Optional[str] = ..., voucher: _Optional[_Union[MintVoucher, _Mapping]] = ..., signature: _Optional[str] = ..., tx: _Optional[_Union[MintTx, _Mapping]] = ...) -> None: ...
