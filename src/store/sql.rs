//! How domain values are written to and read from SQLite columns: the
//! enums as their names, lists and records as JSON text.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::Row;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::deliver::{DeliveryState, MessageKind};
use crate::digest::DigestMode;
use crate::post::{FiledBy, Status};
use crate::subscribers::Mode;

/// The enums stored as their `as_str` names, read back through `FromStr`.
macro_rules! stored_by_name {
    ($($kind:ty),* $(,)?) => {$(
        impl ToSql for $kind {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $kind {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|error| FromSqlError::Other(Box::new(error)))
            }
        }
    )*};
}

stored_by_name!(
    Status,
    FiledBy,
    DigestMode,
    DeliveryState,
    MessageKind,
    Mode
);

/// A value as the JSON text a column holds.
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

/// The JSON text of column `index`, read back.
pub fn from_json<T: DeserializeOwned>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            Box::new(error),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_and_unknown_names_are_errors() {
        let db = crate::store::open_in_memory().unwrap();
        for mode in DigestMode::ALL {
            let back: DigestMode = db.query_row("SELECT ?1", [mode], |row| row.get(0)).unwrap();
            assert_eq!(back, mode);
        }
        let wrong = db.query_row("SELECT 'fortnightly'", [], |row| {
            row.get::<_, DigestMode>(0)
        });
        let error = wrong.unwrap_err().to_string();
        assert!(
            error.contains("unknown digest mode `fortnightly`"),
            "{error}"
        );
    }
}
