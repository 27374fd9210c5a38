//! IAM Identity Center account assignments. Creation and deletion are asynchronous in AWS: the
//! call returns a request id and a status, polled until it succeeds or fails.

use crate::client::AwsClient;
use elevate_core::ports::ProviderError;
use serde_json::{Value, json};
use std::time::Instant;
use tracing::debug;

/// One assignment: a permission set in an account for a user or group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub instance_arn: String,
    pub permission_set_arn: String,
    pub account_id: String,
    /// `USER` or `GROUP`.
    pub principal_type: String,
    pub principal_id: String,
}

impl Assignment {
    fn body(&self) -> Value {
        json!({
            "InstanceArn": self.instance_arn,
            "TargetId": self.account_id,
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": self.permission_set_arn,
            "PrincipalType": self.principal_type,
            "PrincipalId": self.principal_id,
        })
    }
}

/// Which way an assignment is moving, for polling its status.
#[derive(Clone, Copy)]
enum Op {
    Create,
    Delete,
}

impl Op {
    fn status_key(self) -> &'static str {
        match self {
            Op::Create => "AccountAssignmentCreationStatus",
            Op::Delete => "AccountAssignmentDeletionStatus",
        }
    }
    fn describe_action(self) -> &'static str {
        match self {
            Op::Create => "DescribeAccountAssignmentCreationStatus",
            Op::Delete => "DescribeAccountAssignmentDeletionStatus",
        }
    }
    fn request_id_key(self) -> &'static str {
        match self {
            Op::Create => "AccountAssignmentCreationRequestId",
            Op::Delete => "AccountAssignmentDeletionRequestId",
        }
    }
}

impl AwsClient {
    /// Whether the assignment exists (`ListAccountAssignments`, paginated).
    pub async fn assignment_exists(&self, a: &Assignment) -> Result<bool, ProviderError> {
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({ "InstanceArn": a.instance_arn, "AccountId": a.account_id, "PermissionSetArn": a.permission_set_arn });
            if let Some(t) = &token {
                body["NextToken"] = json!(t);
            }
            let page = self.json("ListAccountAssignments", &body).await?;
            let found = page["AccountAssignments"].as_array().into_iter().flatten().any(|x| {
                x["PrincipalType"] == a.principal_type.as_str() && x["PrincipalId"] == a.principal_id.as_str()
            });
            if found {
                return Ok(true);
            }
            token = page["NextToken"].as_str().filter(|t| !t.is_empty()).map(str::to_string);
            if token.is_none() {
                return Ok(false);
            }
        }
    }

    /// Creates the assignment unless it exists, and waits until AWS reports it done.
    pub async fn create_assignment(&self, a: &Assignment) -> Result<(), ProviderError> {
        if self.assignment_exists(a).await? {
            debug!(principal = %a.principal_id, "assignment already exists");
            return Ok(());
        }
        let answer = match self.json("CreateAccountAssignment", &a.body()).await {
            Ok(v) => v,
            Err(ProviderError::Permanent { code, message }) if code == "ConflictException" => {
                // Another operation on the same assignment is under way (often our own earlier
                // attempt). If it has landed, that is success; if not, try again later.
                if self.assignment_exists(a).await? {
                    return Ok(());
                }
                return Err(ProviderError::transient(format!("ConflictException: {message}")));
            }
            Err(e) => return Err(e),
        };
        self.wait(a, Op::Create, &answer).await
    }

    /// Deletes the assignment and waits until AWS reports it done; already gone is success.
    pub async fn delete_assignment(&self, a: &Assignment) -> Result<(), ProviderError> {
        let answer = match self.json("DeleteAccountAssignment", &a.body()).await {
            Ok(v) => v,
            Err(ProviderError::Permanent { code, .. }) if code == "ResourceNotFoundException" => {
                return Ok(());
            }
            Err(ProviderError::Permanent { code, message }) if code == "ConflictException" => {
                return Err(ProviderError::transient(format!("ConflictException: {message}")));
            }
            Err(e) => return Err(e),
        };
        self.wait(a, Op::Delete, &answer).await
    }

    async fn wait(&self, a: &Assignment, op: Op, first: &Value) -> Result<(), ProviderError> {
        let deadline = Instant::now() + self.settings().poll_timeout;
        let mut status = first[op.status_key()].clone();
        loop {
            match status["Status"].as_str().unwrap_or("") {
                "SUCCEEDED" => return Ok(()),
                "FAILED" => {
                    let reason = status["FailureReason"].as_str().unwrap_or("no reason given");
                    return Err(ProviderError::permanent("AssignmentFailed", reason));
                }
                _ => {}
            }
            let Some(request_id) = status["RequestId"].as_str().map(str::to_string) else {
                return Err(ProviderError::transient(format!(
                    "{}: answer without a request id to poll",
                    op.describe_action()
                )));
            };
            if Instant::now() >= deadline {
                return Err(ProviderError::transient(format!(
                    "Identity Center request {request_id} still in progress; will check again"
                )));
            }
            tokio::time::sleep(self.settings().poll_interval).await;
            let body = json!({ "InstanceArn": a.instance_arn, op.request_id_key(): request_id });
            let answer = self.json(op.describe_action(), &body).await?;
            status = answer[op.status_key()].clone();
        }
    }
}
