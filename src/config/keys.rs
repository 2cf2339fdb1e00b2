//! The keys each lists.toml table takes, read from the `Raw*` structs the
//! loader deserialises (their `deny_unknown_fields` makes that list exact),
//! so docs/configuration.md is checked against the code rather than
//! against a copy of it.

use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::{delivery, dkim, feeds, ingest, list, listen, site};

/// Every table of lists.toml as written (`[site]`, `[[list]]`...) with the
/// keys it takes, in the order the structs declare them.
pub fn tables() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("[site]", fields_of::<site::RawSite>()),
        ("[ingest]", fields_of::<ingest::RawIngest>()),
        ("[feeds]", fields_of::<feeds::RawFeeds>()),
        ("[listen]", fields_of::<listen::RawListen>()),
        ("[delivery]", fields_of::<delivery::RawDelivery>()),
        ("[[dkim]]", fields_of::<dkim::RawDkim>()),
        ("[[list]]", fields_of::<list::RawList>()),
    ]
}

/// The field names serde's derive hands `deserialize_struct` for `T`.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields = None;
    let _ = T::deserialize(FieldProbe {
        fields: &mut fields,
    });
    fields.expect("a table is deserialised as a struct")
}

/// A deserializer that only records the field names of the struct asked
/// of it, then fails.
struct FieldProbe<'a> {
    fields: &'a mut Option<&'static [&'static str]>,
}

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only a struct's field names are read"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.fields = Some(fields);
        Err(de::Error::custom("field names read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_table_has_its_keys() {
        let tables = super::tables();
        let site = tables.iter().find(|(name, _)| *name == "[site]").unwrap();
        assert!(site.1.contains(&"file_mode"));
        assert!(tables.iter().all(|(_, keys)| !keys.is_empty()));
    }
}
