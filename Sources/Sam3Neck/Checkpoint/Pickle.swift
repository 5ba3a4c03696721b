/// A restricted unpickler: it understands what `torch.save` writes for a state dict of tensors and
/// nothing more. It executes nothing: a GLOBAL is looked up in a fixed allow-list and becomes a
/// marker value; REDUCE of an allowed marker builds data (an ordered dict, a tensor reference).
/// Any other global is an error that names it.
///
/// Opcodes: those of protocol 2 that such files use (plus the few protocol 3/4 ones that a
/// `pickle_protocol=4` save adds: FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL, BINBYTES).
///
/// A hostile pickle is refused, never followed into a crash: values nest at most `maxDepth` deep
/// (checked as each container is built, so no recursion, in building or in freeing, grows past
/// it), a container cannot change once it sits inside another (so there are no cycles and the
/// depth known at construction stays true), and the values built, the stack and the memo each
/// have a budget (`maxCells`, `maxStack`, `maxMemo`) that bounds the memory spent, accepting or
/// refusing.
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes(Int)  // only the length is kept: no state dict needs the contents
    case tuple(PickleTuple)
    case list(PickleList)
    case dict(PickleDict)
    /// An allow-listed global, "module.name".
    case global(String)
    /// A storage as referenced by a persistent id.
    indirect case storage(TorchStorage)
    /// Indirect so that the enum stays small (it is what the stack, memo and containers hold).
    indirect case tensor(TorchTensor)

    var string: String? { if case let .string(s) = self { return s } else { return nil } }
    var int: Int? {
        switch self {
        case let .int(i): return i
        case let .bool(b): return b ? 1 : 0
        default: return nil
        }
    }
    var tuple: [PickleValue]? { if case let .tuple(t) = self { return t.items } else { return nil } }

    /// Nesting depth: 0 for scalars, 1 + the deepest item for containers (known at construction).
    var depth: Int {
        switch self {
        case let .tuple(t): return t.depth
        case let .list(l): return l.depth
        case let .dict(d): return d.depth
        case .tensor: return 1
        default: return 0
        }
    }

    /// Marks a list or dict as contained: from now on it may not change.
    func seal() {
        switch self {
        case let .list(l): l.sealed = true
        case let .dict(d): d.sealed = true
        default: break
        }
    }

    /// A short description for messages.
    var kindName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case let .global(g): return g
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}

/// A tuple, a reference type so that its depth is stored once rather than recomputed.
final class PickleTuple {
    let items: [PickleValue]
    let depth: Int
    init(_ items: [PickleValue], depth: Int) {
        self.items = items
        self.depth = depth
    }
}

/// Lists and dicts are mutable after creation (APPEND, SETITEMS follow them), hence reference
/// types; `sealed` once they are put inside another value, after which they may not change.
final class PickleList {
    var items: [PickleValue] = []
    var depth = 1
    var sealed = false
}

final class PickleDict {
    /// In insertion order, as Python keeps them.
    var items: [(key: PickleValue, value: PickleValue)] = []
    var depth = 1
    var sealed = false

    subscript(key: String) -> PickleValue? {
        items.first { $0.key.string == key }?.value
    }
}

/// A storage named by a persistent id `("storage", torch.FloatStorage, key, location, numel)`.
struct TorchStorage {
    let key: String
    let dtype: DType?
    let dtypeName: String
    let count: Int
}

/// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)`: a strided view of a storage.
struct TorchTensor {
    let storage: TorchStorage
    let offset: Int
    let shape: [Int]
    let strides: [Int]
}

struct Unpickler {
    /// Storage classes torch.save names in persistent ids, and the dtypes they hold.
    static let storageTypes: [String: (DType?, String)] = [
        "torch.FloatStorage": (.f32, "F32"), "torch.HalfStorage": (.f16, "F16"),
        "torch.BFloat16Storage": (.bf16, "BF16"), "torch.DoubleStorage": (.f64, "F64"),
        "torch.LongStorage": (.i64, "I64"), "torch.IntStorage": (.i32, "I32"),
        "torch.ShortStorage": (.i16, "I16"), "torch.CharStorage": (.i8, "I8"),
        "torch.ByteStorage": (.u8, "U8"), "torch.BoolStorage": (.bool, "BOOL"),
        "torch.ComplexFloatStorage": (.c64, "C64"), "torch.ComplexDoubleStorage": (nil, "C128"),
        "torch.Float8_e4m3fnStorage": (.f8e4m3, "F8_E4M3"), "torch.Float8_e5m2Storage": (.f8e5m2, "F8_E5M2"),
    ]

    /// Callables REDUCE may apply, and classes that may appear as arguments.
    static let allowedGlobals: Set<String> = Set(storageTypes.keys).union([
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._tensor._rebuild_from_type_v2",
        "torch.Tensor",
        "torch.nn.parameter.Parameter",
    ])

    /// Deepest nesting of containers accepted (a state dict needs fewer than 10 levels).
    static let maxDepth = 200
    /// Values the stack may hold at once.
    static let maxStack = 1 << 20
    /// Memo entries (torch.save memoizes a handful per tensor).
    static let maxMemo = 1 << 20
    /// Items stored in tuples, lists and dicts over the whole pickle (a dict item counts two):
    /// about 20 per tensor in a state dict, so 4 M leaves room for 200,000 tensors while a hostile
    /// pickle spends at most ~100 MB on values before it is refused.
    static let maxCells = 1 << 22

    let label: String

    init(label: String) { self.label = label }

    func error(_ what: String, at offset: Int) -> NeckError {
        NeckError(.format, "\(label): \(what) (pickle byte \(offset))")
    }

    func load(_ b: UnsafeRawBufferPointer) throws -> PickleValue {
        var stack: [PickleValue] = []
        var marks: [Int] = []
        var memo: [Int: PickleValue] = [:]
        var cells = 0
        var p = 0

        func need(_ n: Int, _ at: Int) throws {
            guard n >= 0, n <= b.count - p else { throw error("truncated", at: at) }
        }
        func pop(_ at: Int) throws -> PickleValue {
            guard let v = stack.popLast(), stack.count >= (marks.last ?? 0) else {
                throw error("stack underflow", at: at)
            }
            return v
        }
        func popMark(_ at: Int) throws -> [PickleValue] {
            guard let m = marks.popLast(), m <= stack.count else { throw error("no MARK on the stack", at: at) }
            let items = Array(stack[m...])
            stack.removeSubrange(m...)
            return items
        }
        func push(_ v: PickleValue, _ at: Int) throws {
            guard stack.count < Unpickler.maxStack else {
                throw error("more than \(Unpickler.maxStack) values on the stack (the limit)", at: at)
            }
            stack.append(v)
        }
        /// Accounts for `n` more items stored in containers.
        func spend(_ n: Int, _ at: Int) throws {
            cells += n
            guard cells <= Unpickler.maxCells else {
                throw error(
                    "more than \(Unpickler.maxCells) items in tuples, lists and dicts (the limit for a state dict)",
                    at: at)
            }
        }
        /// The depth a container holding `items` would have, checked against the limit; seals them.
        /// (Callers that add to an existing container seal the items before checking that it may
        /// still change, so that it cannot be added to itself.)
        func nest(_ items: [PickleValue], into current: Int = 1, _ at: Int) throws -> Int {
            var depth = current
            for v in items {
                v.seal()
                depth = max(depth, v.depth + 1)
            }
            guard depth <= Unpickler.maxDepth else {
                throw error("values nested \(depth) deep, more than the limit of \(Unpickler.maxDepth)", at: at)
            }
            return depth
        }
        func tuple(_ items: [PickleValue], _ at: Int) throws -> PickleValue {
            try spend(items.count, at)
            return .tuple(PickleTuple(items, depth: try nest(items, at)))
        }
        /// The list on top of the stack, if it may still change.
        func openList(_ op: String, _ at: Int) throws -> PickleList {
            guard case let .list(l)? = stack.last, stack.count > (marks.last ?? 0) else {
                throw error("\(op) to a \(stack.last?.kindName ?? "nothing")", at: at)
            }
            guard !l.sealed else {
                throw error(
                    "\(op) to a list that is already inside another value (recursive structures are not part of a state dict)",
                    at: at)
            }
            return l
        }
        func openDict(_ op: String, _ at: Int) throws -> PickleDict {
            guard case let .dict(d)? = stack.last, stack.count > (marks.last ?? 0) else {
                throw error("\(op) on a \(stack.last?.kindName ?? "nothing")", at: at)
            }
            guard !d.sealed else {
                throw error(
                    "\(op) on a dict that is already inside another value (recursive structures are not part of a state dict)",
                    at: at)
            }
            return d
        }
        func memoize(_ index: Int, _ at: Int) throws {
            guard let top = stack.last, stack.count > (marks.last ?? 0) else {
                throw error("memo store from an empty stack", at: at)
            }
            guard memo.count < Unpickler.maxMemo || memo[index] != nil else {
                throw error("more than \(Unpickler.maxMemo) memo entries (the limit)", at: at)
            }
            memo[index] = top
        }
        func fetch(_ index: Int, _ at: Int) throws {
            guard let v = memo[index] else { throw error("memo entry \(index) read before it was written", at: at) }
            try push(v, at)
        }
        func text(_ n: Int, _ at: Int) throws -> String {
            try need(n, at)
            guard let s = String(validating: UnsafeRawBufferPointer(rebasing: b[p..<(p + n)]), as: UTF8.self) else {
                throw error("string is not UTF-8", at: at)
            }
            p += n
            return s
        }
        func line(_ at: Int) throws -> String {
            var q = p
            while q < b.count, b[q] != 0x0A { q += 1 }
            guard q < b.count else { throw error("truncated", at: at) }
            let s = String(decoding: UnsafeRawBufferPointer(rebasing: b[p..<q]), as: UTF8.self)
            p = q + 1
            return s
        }
        func global(_ module: String, _ name: String, _ at: Int) throws -> PickleValue {
            let full = "\(module).\(name)"
            guard Unpickler.allowedGlobals.contains(full) else {
                throw NeckError(
                    .format,
                    "\(label): the pickle refers to '\(full)', which is not allowed: only state dicts of tensors are read, and nothing in the file is executed (pickle byte \(at))"
                )
            }
            return .global(full)
        }

        while true {
            let at = p
            guard p < b.count else { throw error("no STOP opcode (truncated?)", at: at) }
            let op = b[p]
            p += 1
            switch op {
            case 0x80:  // PROTO
                try need(1, at)
                guard b[p] <= 5 else { throw error("unsupported pickle protocol \(b[p])", at: at) }
                p += 1
            case 0x95:  // FRAME: an 8-byte length hint; the data follows inline
                try need(8, at)
                p += 8
            case 0x2E:  // STOP
                guard marks.isEmpty, stack.count == 1 else {
                    throw error("STOP with \(stack.count) values and \(marks.count) marks on the stack", at: at)
                }
                return stack[0]
            case 0x28:  // MARK
                guard marks.count < Unpickler.maxStack else {
                    throw error("more than \(Unpickler.maxStack) marks (the limit)", at: at)
                }
                marks.append(stack.count)
            case 0x4E: try push(.none, at)
            case 0x88: try push(.bool(true), at)
            case 0x89: try push(.bool(false), at)
            case 0x4B:  // BININT1
                try need(1, at)
                try push(.int(Int(b[p])), at)
                p += 1
            case 0x4D:  // BININT2
                try need(2, at)
                try push(.int(Int(b.u16(p))), at)
                p += 2
            case 0x4A:  // BININT
                try need(4, at)
                try push(.int(Int(Int32(bitPattern: b.u32(p)))), at)
                p += 4
            case 0x8A:  // LONG1: little-endian two's complement of n bytes
                try need(1, at)
                let n = Int(b[p])
                p += 1
                try need(n, at)
                guard n <= 8 else { throw error("integer of \(n) bytes is out of range", at: at) }
                var v: UInt64 = 0
                for k in 0..<n { v |= UInt64(b[p + k]) << (8 * UInt64(k)) }
                if n > 0, n < 8, b[p + n - 1] & 0x80 != 0 { v |= ~0 << (8 * UInt64(n)) }
                p += n
                try push(.int(Int(Int64(bitPattern: v))), at)
            case 0x47:  // BINFLOAT: big-endian double
                try need(8, at)
                let bits = UInt64(bigEndian: b.loadUnaligned(fromByteOffset: p, as: UInt64.self))
                p += 8
                try push(.float(Double(bitPattern: bits)), at)
            case 0x58:  // BINUNICODE
                try need(4, at)
                let n = Int(b.u32(p))
                p += 4
                try push(.string(try text(n, at)), at)
            case 0x8C:  // SHORT_BINUNICODE
                try need(1, at)
                let n = Int(b[p])
                p += 1
                try push(.string(try text(n, at)), at)
            case 0x54, 0x42:  // BINSTRING, BINBYTES (4-byte length)
                try need(4, at)
                let n = Int(b.u32(p))
                p += 4
                try need(n, at)
                p += n
                try push(.bytes(n), at)
            case 0x55, 0x43:  // SHORT_BINSTRING, SHORT_BINBYTES
                try need(1, at)
                let n = Int(b[p])
                p += 1
                try need(n, at)
                p += n
                try push(.bytes(n), at)
            case 0x29: try push(try tuple([], at), at)  // EMPTY_TUPLE
            case 0x74: try push(try tuple(try popMark(at), at), at)  // TUPLE
            case 0x85: try push(try tuple([try pop(at)], at), at)  // TUPLE1
            case 0x86:  // TUPLE2
                let y = try pop(at), x = try pop(at)
                try push(try tuple([x, y], at), at)
            case 0x87:  // TUPLE3
                let z = try pop(at), y = try pop(at), x = try pop(at)
                try push(try tuple([x, y, z], at), at)
            case 0x5D: try push(.list(PickleList()), at)  // EMPTY_LIST
            case 0x7D: try push(.dict(PickleDict()), at)  // EMPTY_DICT
            case 0x61:  // APPEND
                let v = try pop(at)
                v.seal()  // before the check: a list appended to itself is then refused
                let l = try openList("APPEND", at)
                try spend(1, at)
                l.depth = try nest([v], into: l.depth, at)
                l.items.append(v)
            case 0x65:  // APPENDS
                let items = try popMark(at)
                items.forEach { $0.seal() }
                let l = try openList("APPENDS", at)
                try spend(items.count, at)
                l.depth = try nest(items, into: l.depth, at)
                l.items.append(contentsOf: items)
            case 0x73:  // SETITEM
                let v = try pop(at), k = try pop(at)
                v.seal(); k.seal()
                let d = try openDict("SETITEM", at)
                try spend(2, at)
                d.depth = try nest([k, v], into: d.depth, at)
                d.items.append((k, v))
            case 0x75:  // SETITEMS
                let items = try popMark(at)
                guard items.count % 2 == 0 else { throw error("SETITEMS with an odd number of values", at: at) }
                items.forEach { $0.seal() }
                let d = try openDict("SETITEMS", at)
                try spend(items.count, at)
                d.depth = try nest(items, into: d.depth, at)
                for k in stride(from: 0, to: items.count, by: 2) { d.items.append((items[k], items[k + 1])) }
            case 0x71:  // BINPUT
                try need(1, at)
                try memoize(Int(b[p]), at)
                p += 1
            case 0x72:  // LONG_BINPUT
                try need(4, at)
                try memoize(Int(b.u32(p)), at)
                p += 4
            case 0x94: try memoize(memo.count, at)  // MEMOIZE
            case 0x68:  // BINGET
                try need(1, at)
                let i = Int(b[p])
                p += 1
                try fetch(i, at)
            case 0x6A:  // LONG_BINGET
                try need(4, at)
                let i = Int(b.u32(p))
                p += 4
                try fetch(i, at)
            case 0x63:  // GLOBAL "module\nname\n"
                let module = try line(at), name = try line(at)
                try push(try global(module, name, at), at)
            case 0x93:  // STACK_GLOBAL
                let name = try pop(at), module = try pop(at)
                guard let m = module.string, let n = name.string else {
                    throw error("STACK_GLOBAL needs two strings", at: at)
                }
                try push(try global(m, n, at), at)
            case 0x51:  // BINPERSID
                let pid = try pop(at)
                pid.seal()
                try push(try persistent(pid, at), at)
            case 0x52:  // REDUCE
                let args = try pop(at), callable = try pop(at)
                args.seal()
                try push(try reduce(callable, args, at), at)
            case 0x62:  // BUILD: state for an object made by REDUCE
                let state = try pop(at)
                state.seal()
                guard let target = stack.last, stack.count > (marks.last ?? 0) else {
                    throw error("BUILD on an empty stack", at: at)
                }
                switch (target, state) {
                case (.dict, .dict), (.dict, .none), (.tensor, _):
                    break  // an OrderedDict's attributes (state_dict's _metadata), a tensor's extra state: not needed
                default:
                    throw error(
                        "BUILD of a \(state.kindName) on a \(target.kindName) is not part of a state dict", at: at)
                }
            default:
                throw error(
                    "opcode 0x\(String(op, radix: 16, uppercase: true)) is not supported (not a torch.save state dict?)",
                    at: at)
            }
        }
    }

    /// `("storage", torch.FloatStorage, key, location, numel)` → a storage reference.
    private func persistent(_ pid: PickleValue, _ at: Int) throws -> PickleValue {
        guard let t = pid.tuple, t.count == 5, t[0].string == "storage",
            case let .global(type) = t[1], let key = t[2].string, t[3].string != nil, let count = t[4].int, count >= 0
        else {
            throw error("persistent id \(pid.kindName) is not a torch storage reference", at: at)
        }
        guard let (dtype, name) = Unpickler.storageTypes[type] else {
            throw error("'\(type)' is not a storage type", at: at)
        }
        return .storage(TorchStorage(key: key, dtype: dtype, dtypeName: name, count: count))
    }

    private func reduce(_ callable: PickleValue, _ args: PickleValue, _ at: Int) throws -> PickleValue {
        guard case let .global(f) = callable else {
            throw error("REDUCE of a \(callable.kindName), not a callable", at: at)
        }
        guard let a = args.tuple else { throw error("REDUCE of \(f) with \(args.kindName) arguments", at: at) }
        switch f {
        case "collections.OrderedDict":
            guard a.isEmpty else { throw error("OrderedDict with arguments", at: at) }
            return .dict(PickleDict())
        case "torch._utils._rebuild_tensor_v2":
            guard a.count >= 4, case let .storage(s) = a[0], let offset = a[1].int,
                let size = a[2].tuple, let stride = a[3].tuple
            else { throw error("_rebuild_tensor_v2 with unexpected arguments", at: at) }
            let shape = try size.map { v -> Int in
                guard let i = v.int, i >= 0 else { throw error("tensor size \(v.kindName) is not a count", at: at) }
                return i
            }
            let strides = try stride.map { v -> Int in
                guard let i = v.int, i >= 0 else {
                    throw error("tensor stride \(v.kindName) is not a non-negative int", at: at)
                }
                return i
            }
            guard shape.count == strides.count, offset >= 0 else {
                throw error("tensor with \(shape.count) sizes, \(strides.count) strides and offset \(offset)", at: at)
            }
            return .tensor(TorchTensor(storage: s, offset: offset, shape: shape, strides: strides))
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard let first = a.first, case .tensor = first else { throw error("\(f) without a tensor", at: at) }
            return first
        case "torch._tensor._rebuild_from_type_v2":
            // (func, type, args, state): a tensor subclass rebuilt by an allowed func (one level:
            // the func may not be this function again).
            guard a.count >= 3, case let .global(g) = a[0], g != f, case .tuple = a[2] else {
                throw error("\(f) with unexpected arguments", at: at)
            }
            return try reduce(a[0], a[2], at)
        default:
            throw error("'\(f)' cannot be called (it is only allowed as an argument)", at: at)
        }
    }
}
