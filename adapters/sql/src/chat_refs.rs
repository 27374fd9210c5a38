//! `ChatRefs` for both dialects: which chat message belongs to which request.

use crate::{
    Pools, SqlStore, err,
    exec::{Exec, args},
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use elevate_core::{
    RequestId,
    ports::{ChatRefs, StoreError},
    time::to_millis,
};

const SELECT: &str = "SELECT channel, message FROM chat_refs WHERE platform = $1 AND request_id = $2 AND name = $3";
const FIRST_DELIVERY: &str = "INSERT INTO chat_deliveries (platform, delivery_id, received_at, keep_until) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (platform, delivery_id) DO NOTHING";
const FORGET_DELIVERIES: &str = "DELETE FROM chat_deliveries WHERE keep_until < $1";

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
            Pools::Postgres(pool) => self.pg(pool, async { run!(pool) }).await,
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
            Pools::Postgres(pool) => self.pg(pool, async { run!(pool) }).await,
        }
    }

    async fn first_delivery(
        &self,
        platform: &str,
        id: &str,
        now: DateTime<Utc>,
        keep_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (platform, id) = (platform.to_string(), id.to_string());
        let (now, keep) = (to_millis(now), to_millis(keep_until));
        // Forgetting what is past its window rides along now and then rather than on every
        // delivery: one delete in 64 keeps the table at a window's worth of rows.
        let forget = self.deliveries.fetch_add(1, std::sync::atomic::Ordering::Relaxed).is_multiple_of(64);
        match &self.pools {
            Pools::Sqlite { thread, .. } => {
                thread
                    .run(move |tx| {
                        Box::pin(async move {
                            if forget {
                                tx.exec(FORGET_DELIVERIES, args![now]).await?;
                            }
                            Ok(tx.exec(FIRST_DELIVERY, args![platform, id, now, keep]).await? == 1)
                        })
                    })
                    .await
            }
            Pools::Postgres(pool) => {
                self.pg(pool, async {
                    if forget {
                        sqlx::query(FORGET_DELIVERIES).bind(now).execute(pool).await.map_err(err)?;
                    }
                    let done = sqlx::query(FIRST_DELIVERY)
                        .bind(platform)
                        .bind(id)
                        .bind(now)
                        .bind(keep)
                        .execute(pool)
                        .await
                        .map_err(err)?;
                    Ok(done.rows_affected() == 1)
                })
                .await
            }
        }
    }
}
