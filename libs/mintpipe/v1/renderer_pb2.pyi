from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class RenderPreviewRequest(_message.Message):
    __slots__ = ("scene", "settings_json", "size")
    SCENE_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_JSON_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    scene: str
    settings_json: str
    size: int
    def __init__(self, scene: _Optional[str] = ..., settings_json: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class RenderPreviewResponse(_message.Message):
    __slots__ = ("png", "settings_hash", "settings_json", "size", "frame", "cached", "replica", "renderer_version")
    PNG_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_HASH_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_JSON_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    RENDERER_VERSION_FIELD_NUMBER: _ClassVar[int]
    png: bytes
    settings_hash: str
    settings_json: str
    size: int
    frame: int
    cached: bool
    replica: str
    renderer_version: str
    def __init__(self, png: _Optional[bytes] = ..., settings_hash: _Optional[str] = ..., settings_json: _Optional[str] = ..., size: _Optional[int] = ..., frame: _Optional[int] = ..., cached: _Optional[bool] = ..., replica: _Optional[str] = ..., renderer_version: _Optional[str] = ...) -> None: ...
