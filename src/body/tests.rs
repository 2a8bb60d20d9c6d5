use std::collections::VecDeque;

use http_body::Body as _;
use http_body_util::BodyExt;

use super::*;

const TIMEOUT: Duration = Duration::from_secs(60);

/// A client body: each frame arrives after its delay; `None` is the end, and a body that
/// runs out of frames without one stalls for ever.
struct Client {
    frames: VecDeque<(Duration, Option<&'static [u8]>)>,
    next: Option<Pin<Box<Sleep>>>,
}

impl Client {
    fn new(frames: &[(u64, Option<&'static [u8]>)]) -> Self {
        Client {
            frames: frames
                .iter()
                .map(|&(secs, f)| (Duration::from_secs(secs), f))
                .collect(),
            next: None,
        }
    }
}

impl http_body::Body for Client {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let Some(&(delay, frame)) = self.frames.front() else {
            return Poll::Pending;
        };
        let sleep = self
            .next
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
        ready!(sleep.as_mut().poll(cx));
        self.next = None;
        self.frames.pop_front();
        Poll::Ready(frame.map(|f| Ok(Frame::data(Bytes::from_static(f)))))
    }
}

async fn read(body: &mut ReadTimeout<Client>) -> Vec<Result<Bytes, BoxError>> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let failed = frame.is_err();
        out.push(frame.map(|f| f.into_data().unwrap()));
        if failed {
            break;
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn the_deadline_is_per_gap_not_per_body() {
    // Three minutes in all, never a minute of silence.
    let mut body = ReadTimeout::new(
        Client::new(&[
            (59, Some(b"a")),
            (59, Some(b"b")),
            (59, Some(b"c")),
            (59, None),
        ]),
        TIMEOUT,
    );
    let frames = read(&mut body).await;
    assert_eq!(frames.len(), 3);
    assert!(frames.iter().all(Result::is_ok));
}

#[tokio::test(start_paused = true)]
async fn a_body_that_stops_fails_after_the_timeout() {
    let started = Instant::now();
    let mut body = ReadTimeout::new(Client::new(&[(1, Some(b"a"))]), TIMEOUT);
    let frames = read(&mut body).await;
    assert_eq!(started.elapsed(), Duration::from_secs(1) + TIMEOUT);
    let [Ok(_), Err(e)] = frames.as_slice() else {
        panic!("{frames:?}")
    };
    assert!(is_stalled(e.as_ref()));
    // It stays failed: a poll after the error must not look like the end of a whole body.
    assert!(!body.is_end_stream());
    assert!(matches!(body.frame().await, Some(Err(e)) if is_stalled(e.as_ref())));
}

#[tokio::test(start_paused = true)]
async fn time_the_consumer_spends_elsewhere_does_not_count() {
    let mut body = ReadTimeout::new(
        Client::new(&[(0, Some(b"a")), (0, Some(b"b")), (0, None)]),
        TIMEOUT,
    );
    assert!(body.frame().await.unwrap().is_ok());
    // An upstream that takes its time before asking for more.
    tokio::time::sleep(TIMEOUT * 3).await;
    assert!(body.frame().await.unwrap().is_ok());
    assert!(body.frame().await.is_none());
}

#[test]
fn stalled_is_found_through_wrapping_errors() {
    #[derive(Debug, thiserror::Error)]
    #[error("wrapped")]
    struct Wrapped(#[source] BoxError);
    let stalled: BoxError = Box::new(Stalled { after: TIMEOUT });
    assert!(is_stalled(&Wrapped(stalled)));
    assert!(!is_stalled(&std::io::Error::other("reset")));
}
