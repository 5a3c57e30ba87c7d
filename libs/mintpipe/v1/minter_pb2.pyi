from mintpipe.v1 import jobs_pb2 as _jobs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetChainRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ChainInfo(_message.Message):
    __slots__ = ("chain_id", "contract", "public_rpc_url", "abi_json", "confirmations", "relay", "voucher_seconds", "signer", "relayer")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_RPC_URL_FIELD_NUMBER: _ClassVar[int]
    ABI_JSON_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    RELAY_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    RELAYER_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    contract: str
    public_rpc_url: str
    abi_json: str
    confirmations: int
    relay: bool
    voucher_seconds: int
    signer: str
    relayer: str
    def __init__(self, chain_id: _Optional[int] = ..., contract: _Optional[str] = ..., public_rpc_url: _Optional[str] = ..., abi_json: _Optional[str] = ..., confirmations: _Optional[int] = ..., relay: _Optional[bool] = ..., voucher_seconds: _Optional[int] = ..., signer: _Optional[str] = ..., relayer: _Optional[str] = ...) -> None: ...

class VoucherFor(_message.Message):
    __slots__ = ("job_id", "wallet", "token_uri")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    WALLET_FIELD_NUMBER: _ClassVar[int]
    TOKEN_URI_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    wallet: str
    token_uri: str
    def __init__(self, job_id: _Optional[str] = ..., wallet: _Optional[str] = ..., token_uri: _Optional[str] = ...) -> None: ...

class SignVouchersRequest(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[VoucherFor]
    def __init__(self, jobs: _Optional[_Iterable[_Union[VoucherFor, _Mapping]]] = ...) -> None: ...

class SignVouchersResponse(_message.Message):
    __slots__ = ("mints",)
    MINTS_FIELD_NUMBER: _ClassVar[int]
    mints: _containers.RepeatedCompositeFieldContainer[_jobs_pb2.MintReady]
    def __init__(self, mints: _Optional[_Iterable[_Union[_jobs_pb2.MintReady, _Mapping]]] = ...) -> None: ...

class VerifyMintRequest(_message.Message):
    __slots__ = ("job_id", "wallet", "token_uri", "tx_hash")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    WALLET_FIELD_NUMBER: _ClassVar[int]
    TOKEN_URI_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    wallet: str
    token_uri: str
    tx_hash: str
    def __init__(self, job_id: _Optional[str] = ..., wallet: _Optional[str] = ..., token_uri: _Optional[str] = ..., tx_hash: _Optional[str] = ...) -> None: ...

class MintProblemInfo(_message.Message):
    __slots__ = ("http_status", "code", "message", "field")
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    http_status: int
    code: str
    message: str
    field: str
    def __init__(self, http_status: _Optional[int] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class VerifyMintResponse(_message.Message):
    __slots__ = ("state", "tx_hash", "token_id", "block", "confirmations", "problem")
    STATE_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    state: str
    tx_hash: str
    token_id: str
    block: int
    confirmations: int
    problem: MintProblemInfo
    def __init__(self, state: _Optional[str] = ..., tx_hash: _Optional[str] = ..., token_id: _Optional[str] = ..., block: _Optional[int] = ..., confirmations: _Optional[int] = ..., problem: _Optional[_Union[MintProblemInfo, _Mapping]] = ...) -> None: ...

class ListReplicasRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MinterReplica(_message.Message):
    __slots__ = ("name", "watching", "sending", "relayer", "head", "started_at", "seen_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WATCHING_FIELD_NUMBER: _ClassVar[int]
    SENDING_FIELD_NUMBER: _ClassVar[int]
    RELAYER_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    watching: bool
    sending: bool
    relayer: str
    head: int
    started_at: float
    seen_at: float
    def __init__(self, name: _Optional[str] = ..., watching: _Optional[bool] = ..., sending: _Optional[bool] = ..., relayer: _Optional[str] = ..., head: _Optional[int] = ..., started_at: _Optional[float] = ..., seen_at: _Optional[float] = ...) -> None: ...

class ListReplicasResponse(_message.Message):
    __slots__ = ("replicas",)
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    replicas: _containers.RepeatedCompositeFieldContainer[MinterReplica]
    def __init__(self, replicas: _Optional[_Iterable[_Union[MinterReplica, _Mapping]]] = ...) -> None: ...
