//! `ChatRefs` for both dialects: which chat message belongs to which request.

use crate::{
    Pools, SqlStore, err,
    exec::{Exec, args},
};
use async_trait::async_trait;
use elevate_core::{
    RequestId,
    ports::{ChatRefs, StoreError},
};

const SELECT: &str = "SELECT channel, message FROM chat_refs WHERE platform = $1 AND request_id = $2 AND name = $3";
const UPSERT: &str = "INSERT INTO chat_refs (platform, request_id, name, channel, message) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (platform, request_id, name) DO UPDATE SET channel = excluded.channel, message = excluded.message";

#[async_trait]
impl ChatRefs for SqlStore {
    async fn chat_ref(
        &self,
        platform: &str,
        request: RequestId,
        name: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        macro_rules! run {
            ($pool:expr) => {
                sqlx::query_as::<_, (String, String)>(SELECT)
                    .bind(platform)
                    .bind(request.0)
                    .bind(name)
                    .fetch_optional($pool)
                    .await
                    .map_err(err)
            };
        }
        match &self.pools {
            // A committed write is visible to every new read in WAL mode.
            Pools::Sqlite { reader, .. } => run!(reader),
            Pools::Postgres(pool) => run!(pool),
        }
    }

    async fn set_chat_ref(
        &self,
        platform: &str,
        request: RequestId,
        name: &str,
        channel: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        macro_rules! run {
            ($pool:expr) => {
                sqlx::query(UPSERT)
                    .bind(platform)
                    .bind(request.0)
                    .bind(name)
                    .bind(channel)
                    .bind(message)
                    .execute($pool)
                    .await
                    .map(|_| ())
                    .map_err(err)
            };
        }
        match &self.pools {
            Pools::Sqlite { thread, .. } => {
                let values = args![platform, request.0, name, channel, message];
                thread.run(move |tx| Box::pin(async move { tx.exec(UPSERT, values).await.map(|_| ()) })).await
            }
            Pools::Postgres(pool) => run!(pool),
        }
    }
}
