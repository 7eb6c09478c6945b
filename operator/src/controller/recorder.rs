//! Publishes the operator's Events (`events.k8s.io/v1`) with series as the Events API means
//! them: an Event that repeats one published within [`SERIES_WINDOW`] — the same object,
//! type, reason, action, note and related object — is counted in that Event's `series` (a
//! small merge patch of `series` alone) instead of written anew. Another note is another
//! Event, so "moved from a to b" never stands for a later move from b to a (kube's own
//! `Recorder` keys a series without the note and keeps the first one).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use serde_json::json;

/// How long after its last occurrence an Event is still counted in a series on a repeat
/// (client-go's and kube-rs's six minutes).
pub const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// How often the record of published Events is swept of those past [`SERIES_WINDOW`].
const SWEEP_EVERY: SignedDuration = SignedDuration::from_secs(30);

/// An object's kind, namespace, name and uid.
type Identity = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// What makes two Events the same occurrence.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    regarding: Identity,
    related: Option<Identity>,
    warning: bool,
    reason: String,
    action: String,
    note: Option<String>,
}

fn identity(r: &ObjectReference) -> Identity {
    (
        r.kind.clone(),
        r.namespace.clone(),
        r.name.clone(),
        r.uid.clone(),
    )
}

/// An Event this recorder wrote: where, and its series so far.
#[derive(Clone, Debug)]
struct Published {
    namespace: String,
    name: String,
    count: i32,
    last: Timestamp,
}

#[derive(Debug, Default)]
struct Record {
    published: HashMap<Key, Published>,
    swept: Option<Timestamp>,
}

/// The operator's Event publisher, shared by every pass.
pub struct EventRecorder {
    client: Client,
    reporter: Reporter,
    record: Mutex<Record>,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder")
            .field("reporter", &self.reporter)
            .finish_non_exhaustive()
    }
}

impl EventRecorder {
    /// A recorder publishing as `reporter` through `client`.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            record: Mutex::default(),
        }
    }

    /// Publishes `event` about `regarding`: a new Event, or one more occurrence of the same
    /// Event published within [`SERIES_WINDOW`].
    ///
    /// # Errors
    ///
    /// The API server's answer when it refuses the Event.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = Key {
            regarding: identity(regarding),
            related: event.secondary.as_ref().map(identity),
            warning: event.type_ == EventType::Warning,
            reason: event.reason.clone(),
            action: event.action.clone(),
            note: event.note.clone(),
        };
        let repeat = {
            let mut record = self.record.lock().unwrap_or_else(PoisonError::into_inner);
            if record
                .swept
                .is_none_or(|at| now.duration_since(at) > SWEEP_EVERY)
            {
                record
                    .published
                    .retain(|_, p| now.duration_since(p.last) <= SERIES_WINDOW);
                record.swept = Some(now);
            }
            record
                .published
                .get(&key)
                .filter(|p| now.duration_since(p.last) <= SERIES_WINDOW)
                .cloned()
        };
        let published = match repeat {
            Some(mut p) => {
                p.count += 1;
                p.last = now;
                match self.count(&p).await {
                    Ok(()) => p,
                    // Deleted meanwhile (Events expire after an hour by default): anew.
                    Err(kube::Error::Api(status)) if status.is_not_found() => {
                        self.create(event, regarding, now).await?
                    }
                    Err(e) => return Err(e),
                }
            }
            None => self.create(event, regarding, now).await?,
        };
        self.record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .published
            .insert(key, published);
        Ok(())
    }

    async fn create(
        &self,
        event: &Event,
        regarding: &ObjectReference,
        now: Timestamp,
    ) -> Result<Published, kube::Error> {
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let name = format!(
            "{}.{:x}",
            regarding
                .name
                .as_deref()
                .unwrap_or(&self.reporter.controller),
            now.as_nanosecond()
        );
        let object = K8sEvent {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            ..K8sEvent::default()
        };
        Api::<K8sEvent>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &object)
            .await?;
        Ok(Published {
            namespace,
            name,
            count: 1,
            last: now,
        })
    }

    /// Counts one more occurrence in the series of the Event `p` names.
    async fn count(&self, p: &Published) -> Result<(), kube::Error> {
        let series = EventSeries {
            count: p.count,
            last_observed_time: MicroTime(p.last),
        };
        Api::<K8sEvent>::namespaced(self.client.clone(), &p.namespace)
            .patch(
                &p.name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "series": series })),
            )
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::Value;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn recorder() -> (EventRecorder, Handle) {
        let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let reporter = Reporter {
            controller: "kube-vrrp-operator".to_owned(),
            instance: Some("test".to_owned()),
        };
        (
            EventRecorder::new(Client::new(svc, "default"), reporter),
            handle,
        )
    }

    fn moved(note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: "MasterChanged".to_owned(),
            note: Some(note.to_owned()),
            action: "UpdateStatus".to_owned(),
            secondary: None,
        }
    }

    fn service() -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Service".to_owned()),
            namespace: Some("shop".to_owned()),
            name: Some("web".to_owned()),
            uid: Some("u1".to_owned()),
            ..ObjectReference::default()
        }
    }

    /// Answers the next request; returns its method, path and body.
    async fn answer(handle: &mut Handle, status: StatusCode) -> (Method, String, Value) {
        let (request, respond) = handle.next_request().await.expect("a request");
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        let reply = if status.is_success() {
            body.clone()
        } else {
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "reason": "NotFound", "code": status.as_u16(), "message": "gone"})
        };
        respond.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                .unwrap(),
        );
        (method, path, body)
    }

    #[tokio::test]
    async fn a_repeated_event_is_counted_in_its_series_and_another_note_is_a_new_event() {
        let (recorder, mut handle) = recorder();
        let server = tokio::spawn(async move {
            let first = answer(&mut handle, StatusCode::CREATED).await;
            let again = answer(&mut handle, StatusCode::OK).await;
            let third = answer(&mut handle, StatusCode::OK).await;
            let other = answer(&mut handle, StatusCode::CREATED).await;
            (first, again, third, other)
        });
        let events = "/apis/events.k8s.io/v1/namespaces/shop/events";
        for note in ["n1 → n2", "n1 → n2", "n1 → n2", "n2 → n1"] {
            recorder.publish(&moved(note), &service()).await.unwrap();
        }
        let (first, again, third, other) = server.await.unwrap();
        assert_eq!((first.0, first.1.as_str()), (Method::POST, events));
        assert_eq!(first.2["note"], "n1 → n2");
        assert_eq!(first.2["regarding"]["name"], "web");
        assert!(first.2.get("series").is_none());
        let name = first.2["metadata"]["name"].as_str().unwrap().to_owned();
        assert_eq!(again.0, Method::PATCH);
        assert_eq!(again.1, format!("{events}/{name}"));
        // Only the series is sent: the note, reason and time of the first stay.
        assert_eq!(again.2.as_object().unwrap().len(), 1);
        assert_eq!(again.2["series"]["count"], 2);
        assert_eq!(third.2["series"]["count"], 3);
        assert_eq!((other.0, other.1.as_str()), (Method::POST, events));
        assert_eq!(other.2["note"], "n2 → n1");
    }

    #[tokio::test]
    async fn a_series_whose_event_is_gone_starts_a_new_event() {
        let (recorder, mut handle) = recorder();
        let server = tokio::spawn(async move {
            let first = answer(&mut handle, StatusCode::CREATED).await;
            let gone = answer(&mut handle, StatusCode::NOT_FOUND).await;
            let anew = answer(&mut handle, StatusCode::CREATED).await;
            (first, gone, anew)
        });
        recorder.publish(&moved("a"), &service()).await.unwrap();
        recorder.publish(&moved("a"), &service()).await.unwrap();
        let (first, gone, anew) = server.await.unwrap();
        assert_eq!(first.0, Method::POST);
        assert_eq!(gone.0, Method::PATCH);
        assert_eq!(anew.0, Method::POST);
        assert!(anew.2.get("series").is_none());
    }
}
