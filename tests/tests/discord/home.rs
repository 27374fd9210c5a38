//! Discord has no home tab: `/elevate mine` answers with the same content as Slack's Home tab,
//! and its "Request access" button opens the request form.

use super::discord_app;

#[tokio::test]
async fn request_access_in_mine_opens_the_request_form() {
    let app = discord_app().await;
    let mine = app.discord_command("alice", "mine", &[]).await;
    assert!(mine.body.to_string().contains("request:form"), "{:?}", mine.body);
    let opened = app.discord_click("alice", "request:form").await;
    assert_eq!(opened.kind(), 9, "a modal: {:?}", opened.body);
    assert_eq!(opened.body["data"]["custom_id"], "request");
}
