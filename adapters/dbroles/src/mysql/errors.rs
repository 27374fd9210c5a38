//! What a MariaDB/MySQL error means for a grant: worth retrying or not, by the server's error
//! number, with the message cleaned of elevate's connection URL and password (see `Redactor`).

use crate::errors::Redactor;
use elevate_core::ports::ProviderError;
use sqlx::mysql::MySqlDatabaseError;

/// Error numbers the grant and revoke paths treat specially.
pub(crate) mod number {
    /// `Cannot revoke role 'r' from: 'u'@'h'` (MariaDB): the membership is not there.
    pub const CANNOT_REVOKE_ROLE: u16 = 1962;
    /// `There is no such grant defined…`: the same, as MySQL and older MariaDB say it.
    pub const NONEXISTING_GRANT: u16 = 1141;
}

/// Classifies an sqlx error. Lost connections, lock and deadlock timeouts, a server shutting
/// down or out of connections are transient; what the server refused for a reason a retry
/// does not change (no such role or login, not allowed) is permanent and carries the server's
/// own message, shown to the requester.
pub(crate) fn classify(e: sqlx::Error, r: &Redactor) -> ProviderError {
    match e {
        sqlx::Error::Database(db) => {
            let message = r.clean(db.message());
            let Some(n) = db.try_downcast_ref::<MySqlDatabaseError>().map(MySqlDatabaseError::number) else {
                return ProviderError::transient(format!("database error: {message}"));
            };
            match permanent_code(n) {
                Some(code) => ProviderError::permanent(code, message),
                None => ProviderError::transient(format!("database error {n}: {message}")),
            }
        }
        sqlx::Error::PoolTimedOut => ProviderError::transient("no connection to the database server in time"),
        sqlx::Error::Io(e) => {
            ProviderError::transient(format!("cannot reach the database server: {}", r.clean(&e.to_string())))
        }
        other => ProviderError::transient(format!("database connection failed: {}", r.clean(&other.to_string()))),
    }
}

/// The code shown for a permanent error number, `None` for one worth retrying.
fn permanent_code(n: u16) -> Option<String> {
    let named = match n {
        1959 => "InvalidRole",
        1133 | 1396 => "NoSuchLogin",
        1044 | 1142 | 1227 | 1410 | 1370 => "InsufficientPrivilege",
        1045 | 1698 => "LoginFailed",
        1049 => "UnknownDatabase",
        _ => "",
    };
    if !named.is_empty() {
        return Some(named.to_string());
    }
    // Too many connections (1040), server shutdown (1053), lock wait timeout (1205), deadlock
    // (1213), read-only or killed connections (1290, 1927), and the client-side 2000s.
    if [1040, 1053, 1205, 1213, 1290, 1927].contains(&n) || n >= 2000 {
        return None;
    }
    Some(format!("MySQL error {n}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_numbers_are_sorted_into_retry_or_not() {
        assert_eq!(permanent_code(1959).as_deref(), Some("InvalidRole"));
        assert_eq!(permanent_code(1133).as_deref(), Some("NoSuchLogin"));
        assert_eq!(permanent_code(1227).as_deref(), Some("InsufficientPrivilege"));
        assert_eq!(permanent_code(1064).as_deref(), Some("MySQL error 1064"));
        for transient in [1040, 1053, 1205, 1213, 1927, 2006, 2013] {
            assert_eq!(permanent_code(transient), None, "{transient}");
        }
    }
}
