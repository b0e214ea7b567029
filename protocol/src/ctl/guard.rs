//! A serde `Deserializer` adapter that bounds what a hostile peer can make
//! the decoder do: nesting depth and decoded collection memory.
//!
//! postcard itself is safe against length lies (it reads elements one by
//! one and fails at the end of the input), but two things are not bounded by
//! the input length alone:
//!
//! * **Recursion.** [`Action::WriteActions`](crate::flow::Action) and
//!   [`CtlError::BundleFailed`](super::CtlError) contain themselves; a few
//!   bytes per level nest a million levels deep in a 16 MiB frame, and serde's
//!   derived code recurses once per level until the thread's stack overflows
//!   (an abort, not a panic). [`Guard`] counts the levels and fails at a
//!   fixed depth.
//! * **Amplification.** Some values decode much larger than their encoding
//!   (an empty [`FlowKey`](crate::flow::FlowKey) is 1 byte on the wire and
//!   312 in memory). [`Guard`] charges `size_of` of every collection element
//!   against a budget, so a frame cannot make the decoder hold more than the
//!   budget in collections (plus the strings and bytes it carries, which are
//!   bounded by the frame itself).
//!
//! It also caps the `size_hint` a collection sees at a few elements.
//! postcard already withholds a hint larger than the remaining input, and
//! serde caps pre-allocation at 1 MiB; the cap makes pre-allocation
//! independent of claimed lengths altogether.
//!
//! The adapter forwards every call unchanged otherwise, so the encoding is
//! exactly postcard's.

use core::cell::Cell;
use core::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// The largest `size_hint` a collection is given (serde pre-allocates from
/// it).
const PREALLOC_CAP: usize = 64;

/// Which limit stopped decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitHit {
    /// Nesting deeper than the depth limit.
    Depth,
    /// Collection elements over the memory budget.
    Memory,
}

/// Shared state of one decode: remaining memory budget and the limit hit,
/// if any (postcard turns custom errors into an opaque variant, so the
/// reason is recorded here).
#[derive(Debug)]
pub(crate) struct Limits {
    budget: Cell<usize>,
    hit: Cell<Option<LimitHit>>,
}

impl Limits {
    /// A fresh state with `budget` bytes for collection elements.
    pub(crate) fn new(budget: usize) -> Limits {
        Limits {
            budget: Cell::new(budget),
            hit: Cell::new(None),
        }
    }

    /// The limit that stopped decoding, if one did.
    pub(crate) fn hit(&self) -> Option<LimitHit> {
        self.hit.get()
    }

    fn charge<E: de::Error>(&self, n: usize) -> Result<(), E> {
        match self.budget.get().checked_sub(n) {
            Some(rest) => {
                self.budget.set(rest);
                Ok(())
            }
            None => {
                self.hit.set(Some(LimitHit::Memory));
                Err(E::custom("decoded size limit exceeded"))
            }
        }
    }

    fn too_deep<E: de::Error>(&self) -> E {
        self.hit.set(Some(LimitHit::Depth));
        E::custom("nesting limit exceeded")
    }
}

/// The adapter: wraps a deserializer with `depth` levels left.
pub(crate) struct Guard<'l, D> {
    inner: D,
    depth: usize,
    limits: &'l Limits,
}

impl<'l, D> Guard<'l, D> {
    /// Wraps `inner`, allowing `depth` nested levels.
    pub(crate) fn new(inner: D, depth: usize, limits: &'l Limits) -> Guard<'l, D> {
        Guard {
            inner,
            depth,
            limits,
        }
    }

    /// Enters one level: the depth left for what is inside.
    fn enter<E: de::Error>(&self) -> Result<usize, E> {
        self.depth
            .checked_sub(1)
            .ok_or_else(|| self.limits.too_deep())
    }

    fn visitor<V>(&self, inner: V, depth: usize, collection: bool) -> GuardVisitor<'l, V> {
        GuardVisitor {
            inner,
            depth,
            limits: self.limits,
            collection,
        }
    }
}

macro_rules! forward_deserialize {
    ($collection:expr; $($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                let depth = self.enter()?;
                let v = self.visitor(visitor, depth, $collection);
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Guard<'_, D> {
    type Error = D::Error;

    forward_deserialize!(false;
        deserialize_any deserialize_bool
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_identifier deserialize_ignored_any);
    forward_deserialize!(true; deserialize_seq deserialize_map);

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let depth = self.enter()?;
        let v = self.visitor(visitor, depth, false);
        self.inner.deserialize_unit_struct(name, v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let depth = self.enter()?;
        let v = self.visitor(visitor, depth, false);
        self.inner.deserialize_newtype_struct(name, v)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let depth = self.enter()?;
        let v = self.visitor(visitor, depth, false);
        self.inner.deserialize_tuple(len, v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let depth = self.enter()?;
        let v = self.visitor(visitor, depth, false);
        self.inner.deserialize_tuple_struct(name, len, v)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let depth = self.enter()?;
        let v = self.visitor(visitor, depth, false);
        self.inner.deserialize_struct(name, fields, v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let depth = self.enter()?;
        let v = self.visitor(visitor, depth, false);
        self.inner.deserialize_enum(name, variants, v)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// Wraps a visitor so that whatever it is handed is wrapped in turn.
/// `collection` is true for sequences and maps (their elements are charged
/// against the budget), false for structs and tuples (inline fields).
struct GuardVisitor<'l, V> {
    inner: V,
    depth: usize,
    limits: &'l Limits,
    collection: bool,
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty))*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for GuardVisitor<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit!(
        visit_bool(bool)
        visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64) visit_i128(i128)
        visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64) visit_u128(u128)
        visit_f32(f32) visit_f64(f64) visit_char(char)
        visit_str(&str) visit_borrowed_str(&'de str) visit_string(String)
        visit_bytes(&[u8]) visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    );

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner
            .visit_some(Guard::new(d, self.depth, self.limits))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner
            .visit_newtype_struct(Guard::new(d, self.depth, self.limits))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_seq(GuardAccess {
            inner: seq,
            depth: self.depth,
            limits: self.limits,
            collection: self.collection,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(GuardAccess {
            inner: map,
            depth: self.depth,
            limits: self.limits,
            collection: self.collection,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_enum(GuardAccess {
            inner: data,
            depth: self.depth,
            limits: self.limits,
            collection: false,
        })
    }
}

/// Wraps a seed so the deserializer it receives is guarded.
struct GuardSeed<'l, T> {
    inner: T,
    depth: usize,
    limits: &'l Limits,
}

impl<'de, T: DeserializeSeed<'de>> DeserializeSeed<'de> for GuardSeed<'_, T> {
    type Value = T::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T::Value, D::Error> {
        self.inner
            .deserialize(Guard::new(d, self.depth, self.limits))
    }
}

/// Wraps a sequence, map, enum or variant access.
struct GuardAccess<'l, A> {
    inner: A,
    depth: usize,
    limits: &'l Limits,
    collection: bool,
}

impl<'l, A> GuardAccess<'l, A> {
    fn seed<T>(&self, inner: T) -> GuardSeed<'l, T> {
        GuardSeed {
            inner,
            depth: self.depth,
            limits: self.limits,
        }
    }

    fn capped_hint(hint: Option<usize>) -> Option<usize> {
        hint.map(|n| n.min(PREALLOC_CAP))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for GuardAccess<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        if self.collection {
            self.limits.charge(core::mem::size_of::<T::Value>())?;
        }
        let seed = self.seed(seed);
        self.inner.next_element_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        Self::capped_hint(self.inner.size_hint())
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for GuardAccess<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        if self.collection {
            self.limits.charge(core::mem::size_of::<K::Value>())?;
        }
        let seed = self.seed(seed);
        self.inner.next_key_seed(seed)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        if self.collection {
            self.limits.charge(core::mem::size_of::<T::Value>())?;
        }
        let seed = self.seed(seed);
        self.inner.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        Self::capped_hint(self.inner.size_hint())
    }
}

impl<'l, 'de, A: EnumAccess<'de>> EnumAccess<'de> for GuardAccess<'l, A> {
    type Error = A::Error;
    type Variant = GuardAccess<'l, A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), A::Error> {
        let guarded = self.seed(seed);
        let (value, variant) = self.inner.variant_seed(guarded)?;
        Ok((
            value,
            GuardAccess {
                inner: variant,
                depth: self.depth,
                limits: self.limits,
                collection: false,
            },
        ))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for GuardAccess<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        let seed = self.seed(seed);
        self.inner.newtype_variant_seed(seed)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let v = GuardVisitor {
            inner: visitor,
            depth: self.depth,
            limits: self.limits,
            collection: false,
        };
        self.inner.tuple_variant(len, v)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let v = GuardVisitor {
            inner: visitor,
            depth: self.depth,
            limits: self.limits,
            collection: false,
        };
        self.inner.struct_variant(fields, v)
    }
}
