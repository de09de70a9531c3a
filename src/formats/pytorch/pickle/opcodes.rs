//! Pickle opcodes by name (CPython's `Lib/pickle.py`, protocols 0–5; `pickletools` documents
//! each one), so the VM reads like the reference implementation.

/// `(`: push a mark.
pub const MARK: u8 = b'(';
/// `.`: end of the pickle; the top of the stack is the result.
pub const STOP: u8 = b'.';
/// `0`: discard the top of the stack.
pub const POP: u8 = b'0';
/// `1`: discard everything down to the last mark.
pub const POP_MARK: u8 = b'1';
/// `2`: duplicate the top of the stack.
pub const DUP: u8 = b'2';
/// `F`: a float as a decimal text line.
pub const FLOAT: u8 = b'F';
/// `I`: an int as a decimal text line (`00`/`01` are booleans).
pub const INT: u8 = b'I';
/// `J`: a 4-byte signed int.
pub const BININT: u8 = b'J';
/// `K`: a 1-byte unsigned int.
pub const BININT1: u8 = b'K';
/// `L`: a long as a decimal text line.
pub const LONG: u8 = b'L';
/// `M`: a 2-byte unsigned int.
pub const BININT2: u8 = b'M';
/// `N`: `None`.
pub const NONE: u8 = b'N';
/// `P`: a persistent id as a text line.
pub const PERSID: u8 = b'P';
/// `Q`: a persistent id from the stack (torch storages).
pub const BINPERSID: u8 = b'Q';
/// `R`: call a callable with an argument tuple.
pub const REDUCE: u8 = b'R';
/// `S`: a quoted string as a text line.
pub const STRING: u8 = b'S';
/// `T`: a Python 2 `str`, 4-byte length.
pub const BINSTRING: u8 = b'T';
/// `U`: a Python 2 `str`, 1-byte length.
pub const SHORT_BINSTRING: u8 = b'U';
/// `V`: a raw-unicode-escaped string as a text line.
pub const UNICODE: u8 = b'V';
/// `X`: a UTF-8 string, 4-byte length.
pub const BINUNICODE: u8 = b'X';
/// `a`: append to a list.
pub const APPEND: u8 = b'a';
/// `b`: set an object's state (`__setstate__`).
pub const BUILD: u8 = b'b';
/// `c`: push `module.name` (two text lines).
pub const GLOBAL: u8 = b'c';
/// `d`: a dict from the items since the mark.
pub const DICT: u8 = b'd';
/// `}`: an empty dict.
pub const EMPTY_DICT: u8 = b'}';
/// `e`: extend a list with the items since the mark.
pub const APPENDS: u8 = b'e';
/// `g`: push a memo entry (text index).
pub const GET: u8 = b'g';
/// `h`: push a memo entry (1-byte index).
pub const BINGET: u8 = b'h';
/// `i`: build a class instance (module and name lines, arguments since the mark).
pub const INST: u8 = b'i';
/// `j`: push a memo entry (4-byte index).
pub const LONG_BINGET: u8 = b'j';
/// `l`: a list from the items since the mark.
pub const LIST: u8 = b'l';
/// `]`: an empty list.
pub const EMPTY_LIST: u8 = b']';
/// `o`: build a class instance (class and arguments since the mark).
pub const OBJ: u8 = b'o';
/// `p`: store the top of the stack in the memo (text index).
pub const PUT: u8 = b'p';
/// `q`: store the top of the stack in the memo (1-byte index).
pub const BINPUT: u8 = b'q';
/// `r`: store the top of the stack in the memo (4-byte index).
pub const LONG_BINPUT: u8 = b'r';
/// `s`: set one dict item.
pub const SETITEM: u8 = b's';
/// `t`: a tuple from the items since the mark.
pub const TUPLE: u8 = b't';
/// `)`: an empty tuple.
pub const EMPTY_TUPLE: u8 = b')';
/// `u`: set dict items from the pairs since the mark.
pub const SETITEMS: u8 = b'u';
/// `G`: an 8-byte big-endian float.
pub const BINFLOAT: u8 = b'G';

/// Protocol 2: the protocol version.
pub const PROTO: u8 = 0x80;
/// Protocol 2: `cls.__new__(cls, *args)`.
pub const NEWOBJ: u8 = 0x81;
/// Protocol 2: an extension registry code, 1 byte.
pub const EXT1: u8 = 0x82;
/// Protocol 2: an extension registry code, 2 bytes.
pub const EXT2: u8 = 0x83;
/// Protocol 2: an extension registry code, 4 bytes.
pub const EXT4: u8 = 0x84;
/// Protocol 2: a 1-tuple from the top of the stack.
pub const TUPLE1: u8 = 0x85;
/// Protocol 2: a 2-tuple from the top of the stack.
pub const TUPLE2: u8 = 0x86;
/// Protocol 2: a 3-tuple from the top of the stack.
pub const TUPLE3: u8 = 0x87;
/// Protocol 2: `True`.
pub const NEWTRUE: u8 = 0x88;
/// Protocol 2: `False`.
pub const NEWFALSE: u8 = 0x89;
/// Protocol 2: a long, 1-byte length, little-endian two's complement.
pub const LONG1: u8 = 0x8a;
/// Protocol 2: a long, 4-byte length.
pub const LONG4: u8 = 0x8b;

/// Protocol 3: `bytes`, 4-byte length.
pub const BINBYTES: u8 = b'B';
/// Protocol 3: `bytes`, 1-byte length.
pub const SHORT_BINBYTES: u8 = b'C';

/// Protocol 4: a UTF-8 string, 1-byte length.
pub const SHORT_BINUNICODE: u8 = 0x8c;
/// Protocol 4: a UTF-8 string, 8-byte length.
pub const BINUNICODE8: u8 = 0x8d;
/// Protocol 4: `bytes`, 8-byte length.
pub const BINBYTES8: u8 = 0x8e;
/// Protocol 4: an empty set.
pub const EMPTY_SET: u8 = 0x8f;
/// Protocol 4: add the items since the mark to a set.
pub const ADDITEMS: u8 = 0x90;
/// Protocol 4: a frozenset from the items since the mark.
pub const FROZENSET: u8 = 0x91;
/// Protocol 4: `cls.__new__(cls, *args, **kwargs)`.
pub const NEWOBJ_EX: u8 = 0x92;
/// Protocol 4: push `module.name` from the two strings on the stack.
pub const STACK_GLOBAL: u8 = 0x93;
/// Protocol 4: store the top of the stack at the next memo index.
pub const MEMOIZE: u8 = 0x94;
/// Protocol 4: a frame length (a hint for buffered readers).
pub const FRAME: u8 = 0x95;

/// Protocol 5: `bytearray`, 8-byte length.
pub const BYTEARRAY8: u8 = 0x96;
/// Protocol 5: an out-of-band buffer.
pub const NEXT_BUFFER: u8 = 0x97;
/// Protocol 5: make the top buffer read-only.
pub const READONLY_BUFFER: u8 = 0x98;
