//! A restricted pickle reader: exactly what a PyTorch state dict needs, nothing that runs code.
//!
//! `torch.save(state_dict)` writes a protocol-2 pickle of an `OrderedDict` mapping names to
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)` calls,
//! where `storage` is a persistent id `('storage', torch.BFloat16Storage, key, 'cpu', numel)`
//! (spec §1.1). This reader is not a Python VM: it knows a short list of opcodes and four kinds
//! of callable (`OrderedDict`, `_rebuild_tensor_v2`, `_rebuild_parameter`, the float storages),
//! and refuses every other opcode or global by name. Nothing is ever called or imported.
//!
//! Resource caps keep a hostile file from asking for unbounded memory: the memo and the stack
//! are capped, and every length is checked against the bytes actually present.
//!
//! Longer than the ~400 lines other files keep to, on purpose: the reader is one state machine
//! (one `match` over opcodes and the values it builds), read best in one place next to the
//! pickle protocol it implements; split, each half would only make sense with the other open.

use crate::error::{Error, Result};
use crate::format::DType;
use std::collections::HashMap;
use std::rc::Rc;

/// Most memo entries a state-dict pickle may use (an official 13B checkpoint has ~2k tensors,
/// each using under ten memo slots).
const MAX_MEMO: usize = 1 << 20;
/// Deepest value stack allowed.
const MAX_STACK: usize = 1 << 20;
/// Most container elements copied in total when a memoised list or dict is modified (a
/// state dict copies a few empty containers; a hostile pickle could otherwise copy a large
/// memoised list once per 4 bytes of input).
const MAX_COPIED: usize = 1 << 22;

/// A tensor reference found in the pickle: where its bytes live and how to view them.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    /// The storage key: the data lives in zip entry `<prefix>/data/<key>`.
    pub storage_key: String,
    pub dtype: DType,
    /// Elements in the storage, as the persistent id states it.
    pub storage_numel: usize,
    /// Offset into the storage, in elements.
    pub offset: usize,
    pub size: Vec<usize>,
    pub stride: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Callable {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    Storage(DType),
}

#[derive(Clone, Debug)]
enum Value {
    Mark,
    None,
    Bool(#[allow(dead_code)] bool),
    Int(i64),
    Float(#[allow(dead_code)] f64),
    Str(String),
    Tuple(Vec<Rc<Value>>),
    List(Vec<Rc<Value>>),
    Dict(Vec<(Rc<Value>, Rc<Value>)>),
    Global(Callable),
    Storage { key: String, dtype: DType, numel: usize },
    Tensor(TensorRef),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Mark => "mark",
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage { .. } => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::BadFile(format!("corrupt pickle in .pth: {}", msg.into()))
}

/// Resolve a `module name` pair to an allowed callable, or refuse it by name.
fn resolve_global(module: &str, name: &str) -> Result<Callable> {
    match (module, name) {
        ("collections", "OrderedDict") => Ok(Callable::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Ok(Callable::RebuildTensorV2),
        ("torch._utils", "_rebuild_parameter") => Ok(Callable::RebuildParameter),
        ("torch", "FloatStorage") => Ok(Callable::Storage(DType::F32)),
        ("torch", "HalfStorage") => Ok(Callable::Storage(DType::F16)),
        ("torch", "BFloat16Storage") => Ok(Callable::Storage(DType::BF16)),
        _ => Err(Error::ForbiddenPickle(format!("global {module}.{name}"))),
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(|| bad("unexpected end of data"))?;
        let s = self.data.get(self.pos..end).ok_or_else(|| bad("unexpected end of data"))?;
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.take(N)?.try_into().map_err(|_| bad("unexpected end of data"))
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(u8::from_le_bytes(self.array()?))
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn line(&mut self) -> Result<&'a str> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let n = rest.iter().position(|&b| b == b'\n').ok_or_else(|| bad("unterminated GLOBAL line"))?;
        let s = std::str::from_utf8(rest.get(..n).unwrap_or_default()).map_err(|_| bad("GLOBAL name is not UTF-8"))?;
        self.pos += n + 1;
        Ok(s)
    }
    fn string(&mut self, n: usize) -> Result<String> {
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| bad("string is not UTF-8"))
    }
}

struct Machine {
    stack: Vec<Rc<Value>>,
    memo: HashMap<u64, Rc<Value>>,
    copied: usize,
}

impl Machine {
    fn push(&mut self, v: Value) -> Result<()> {
        if self.stack.len() >= MAX_STACK {
            return Err(bad("value stack too deep"));
        }
        self.stack.push(Rc::new(v));
        Ok(())
    }
    fn pop(&mut self) -> Result<Rc<Value>> {
        self.stack.pop().ok_or_else(|| bad("stack underflow"))
    }
    /// Pop everything above the topmost mark, and the mark.
    fn pop_mark(&mut self) -> Result<Vec<Rc<Value>>> {
        let at = self.stack.iter().rposition(|v| matches!(**v, Value::Mark)).ok_or_else(|| bad("no MARK on the stack"))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }
    fn memo_put(&mut self, key: u64) -> Result<()> {
        let top = self.stack.last().cloned().ok_or_else(|| bad("memo put on an empty stack"))?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&key) {
            return Err(bad("too many memo entries"));
        }
        self.memo.insert(key, top);
        Ok(())
    }
    fn memo_get(&mut self, key: u64) -> Result<()> {
        let v = self.memo.get(&key).cloned().ok_or_else(|| bad(format!("memo key {key} not defined")))?;
        if self.stack.len() >= MAX_STACK {
            return Err(bad("value stack too deep"));
        }
        self.stack.push(v);
        Ok(())
    }
    fn top_mut(&mut self) -> Result<&mut Value> {
        let top = self.stack.last_mut().ok_or_else(|| bad("stack underflow"))?;
        // A shared container (also in the memo) is copied on write: count what that copies.
        if Rc::strong_count(top) > 1 {
            let n = match &**top {
                Value::List(l) => l.len(),
                Value::Dict(d) => d.len(),
                _ => 0,
            };
            self.copied += n;
            if self.copied > MAX_COPIED {
                return Err(bad("memoised containers copied too often (not a state dict)"));
            }
        }
        Ok(Rc::make_mut(top))
    }
    fn set_items(&mut self, items: Vec<Rc<Value>>) -> Result<()> {
        if !items.len().is_multiple_of(2) {
            return Err(bad("SETITEMS with an odd number of items"));
        }
        match self.top_mut()? {
            Value::Dict(d) => {
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.push((k, v));
                }
                Ok(())
            }
            other => Err(bad(format!("SETITEMS on a {}", other.kind()))),
        }
    }
    fn append(&mut self, items: Vec<Rc<Value>>) -> Result<()> {
        match self.top_mut()? {
            Value::List(l) => {
                l.extend(items);
                Ok(())
            }
            other => Err(bad(format!("APPEND on a {}", other.kind()))),
        }
    }
}

fn as_usize(v: &Value, what: &str) -> Result<usize> {
    match v {
        Value::Int(i) if *i >= 0 => usize::try_from(*i).map_err(|_| bad(format!("{what} too large"))),
        _ => Err(bad(format!("{what} is a {}, expected a non-negative int", v.kind()))),
    }
}

fn usize_tuple(v: &Value, what: &str) -> Result<Vec<usize>> {
    match v {
        Value::Tuple(items) => items.iter().map(|x| as_usize(x, what)).collect(),
        _ => Err(bad(format!("{what} is a {}, expected a tuple", v.kind()))),
    }
}

/// Apply an allowed callable to its argument tuple.
fn call(f: Callable, args: &[Rc<Value>]) -> Result<Value> {
    match f {
        Callable::OrderedDict if args.is_empty() => Ok(Value::Dict(Vec::new())),
        Callable::OrderedDict => Err(Error::ForbiddenPickle("OrderedDict called with arguments".into())),
        Callable::RebuildTensorV2 => {
            let [storage, offset, size, stride, ..] = args else {
                return Err(bad("_rebuild_tensor_v2 needs at least 4 arguments"));
            };
            let (key, dtype, numel) = match &**storage {
                Value::Storage { key, dtype, numel } => (key.clone(), *dtype, *numel),
                other => return Err(bad(format!("tensor storage is a {}", other.kind()))),
            };
            let size = usize_tuple(size, "tensor size")?;
            let stride = usize_tuple(stride, "tensor stride")?;
            if size.len() != stride.len() {
                return Err(bad("tensor size and stride differ in length"));
            }
            Ok(Value::Tensor(TensorRef { storage_key: key, dtype, storage_numel: numel, offset: as_usize(offset, "storage offset")?, size, stride }))
        }
        Callable::RebuildParameter => match args.first().map(|a| &**a) {
            Some(Value::Tensor(t)) => Ok(Value::Tensor(t.clone())),
            _ => Err(bad("_rebuild_parameter without a tensor")),
        },
        Callable::Storage(_) => Err(Error::ForbiddenPickle("a storage class called directly".into())),
    }
}

/// Parse a state-dict pickle into `(name, tensor reference)` pairs, in file order.
pub fn parse_state_dict(data: &[u8]) -> Result<Vec<(String, TensorRef)>> {
    let mut r = Reader { data, pos: 0 };
    let mut m = Machine { stack: Vec::new(), memo: HashMap::new(), copied: 0 };
    loop {
        let op = r.u8()?;
        match op {
            0x80 => {
                let proto = r.u8()?;
                if proto > 5 {
                    return Err(bad(format!("pickle protocol {proto}")));
                }
            }
            0x95 => {
                r.take(8)?; // FRAME: a length hint only
            }
            b'.' => break,
            b'}' => m.push(Value::Dict(Vec::new()))?,
            b']' => m.push(Value::List(Vec::new()))?,
            b')' => m.push(Value::Tuple(Vec::new()))?,
            b'(' => m.push(Value::Mark)?,
            b'N' => m.push(Value::None)?,
            0x88 => m.push(Value::Bool(true))?,
            0x89 => m.push(Value::Bool(false))?,
            b'J' => {
                let v = r.u32()? as i32;
                m.push(Value::Int(v as i64))?
            }
            b'K' => {
                let v = r.u8()?;
                m.push(Value::Int(v as i64))?
            }
            b'M' => {
                let v = r.u16()?;
                m.push(Value::Int(v as i64))?
            }
            0x8a => {
                // LONG1: n bytes of little-endian two's complement
                let n = r.u8()? as usize;
                let b = r.take(n)?;
                if n > 8 {
                    return Err(bad("integer wider than 64 bits"));
                }
                let mut v: i64 = 0;
                for (i, &byte) in b.iter().enumerate() {
                    v |= (byte as i64) << (8 * i);
                }
                if n < 8 && b.last().is_some_and(|&top| top & 0x80 != 0) {
                    v -= 1i64 << (8 * n);
                }
                m.push(Value::Int(v))?
            }
            b'G' => {
                let b = r.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                m.push(Value::Float(f64::from_be_bytes(a)))?
            }
            b'X' => {
                let n = r.u32()? as usize;
                let s = r.string(n)?;
                m.push(Value::Str(s))?
            }
            0x8c => {
                let n = r.u8()? as usize;
                let s = r.string(n)?;
                m.push(Value::Str(s))?
            }
            b'q' => {
                let k = r.u8()? as u64;
                m.memo_put(k)?
            }
            b'r' => {
                let k = r.u32()? as u64;
                m.memo_put(k)?
            }
            0x94 => {
                let k = m.memo.len() as u64;
                m.memo_put(k)?
            }
            b'h' => {
                let k = r.u8()? as u64;
                m.memo_get(k)?
            }
            b'j' => {
                let k = r.u32()? as u64;
                m.memo_get(k)?
            }
            b't' => {
                let items = m.pop_mark()?;
                m.push(Value::Tuple(items))?
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if m.stack.len() < n {
                    return Err(bad("stack underflow in TUPLE"));
                }
                let items = m.stack.split_off(m.stack.len() - n);
                m.push(Value::Tuple(items))?
            }
            b'c' => {
                let module = r.line()?.to_string();
                let name = r.line()?.to_string();
                m.push(Value::Global(resolve_global(&module, &name)?))?
            }
            0x93 => {
                let name = m.pop()?;
                let module = m.pop()?;
                match (&*module, &*name) {
                    (Value::Str(a), Value::Str(b)) => {
                        let g = resolve_global(a, b)?;
                        m.push(Value::Global(g))?
                    }
                    _ => return Err(bad("STACK_GLOBAL without two strings")),
                }
            }
            b'Q' => {
                let pid = m.pop()?;
                let storage = match &*pid {
                    Value::Tuple(t) => match t.as_slice() {
                        [tag, kind, key, _, numel] => match (&**tag, &**kind, &**key) {
                            (Value::Str(tag), Value::Global(Callable::Storage(dtype)), Value::Str(key)) if tag == "storage" => {
                                Value::Storage { key: key.clone(), dtype: *dtype, numel: as_usize(numel, "storage size")? }
                            }
                            _ => return Err(bad("persistent id is not a float storage")),
                        },
                        _ => return Err(bad("persistent id is not a 5-tuple")),
                    },
                    _ => return Err(bad("persistent id is not a 5-tuple")),
                };
                m.push(storage)?
            }
            b'R' => {
                let args = m.pop()?;
                let f = m.pop()?;
                let f = match &*f {
                    Value::Global(g) => *g,
                    other => return Err(Error::ForbiddenPickle(format!("REDUCE on a {}", other.kind()))),
                };
                let args = match &*args {
                    Value::Tuple(a) => a.clone(),
                    other => return Err(bad(format!("REDUCE arguments are a {}", other.kind()))),
                };
                m.push(call(f, &args)?)?
            }
            b'b' => {
                // BUILD: only the `_metadata` attribute of a state dict is expected; it is ignored.
                let _state = m.pop()?;
                match m.stack.last().map(|v| &**v) {
                    Some(Value::Dict(_)) => {}
                    Some(other) => return Err(Error::ForbiddenPickle(format!("BUILD on a {}", other.kind()))),
                    None => return Err(bad("BUILD on an empty stack")),
                }
            }
            b's' => {
                let v = m.pop()?;
                let k = m.pop()?;
                m.set_items(vec![k, v])?
            }
            b'u' => {
                let items = m.pop_mark()?;
                m.set_items(items)?
            }
            b'a' => {
                let v = m.pop()?;
                m.append(vec![v])?
            }
            b'e' => {
                let items = m.pop_mark()?;
                m.append(items)?
            }
            _ => return Err(Error::ForbiddenPickle(format!("opcode 0x{op:02x} at byte {}", r.pos - 1))),
        }
    }
    let top = m.pop()?;
    let Value::Dict(items) = &*top else {
        return Err(Error::BadModel(format!("the .pth holds a {}, not a state dict of tensors", top.kind())));
    };
    let mut out = Vec::with_capacity(items.len());
    for (k, v) in items {
        let name = match &**k {
            Value::Str(s) => s.clone(),
            other => return Err(Error::BadModel(format!("state dict key is a {}, not a name", other.kind()))),
        };
        match &**v {
            Value::Tensor(t) => out.push((name, t.clone())),
            other => return Err(Error::BadModel(format!("state dict entry `{name}` is a {}, not a tensor", other.kind()))),
        }
    }
    Ok(out)
}
