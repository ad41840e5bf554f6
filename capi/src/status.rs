//! Status codes, the thread-local last-error message, and the guard every exported
//! function runs its body in: errors become a status plus a message, panics are caught
//! here and never unwind into C.
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a call did. Every call that can fail returns one; on anything but WGV_STATUS_OK,
/// `wgv_last_error()` says what went wrong.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WgvStatus {
    /// Success.
    Ok = 0,
    /// A null pointer, a string that is not UTF-8, a size that does not add up, an
    /// unknown backend name, a non-finite threshold.
    InvalidArgument = 1,
    /// A caller buffer is too small: the out-length parameter holds the size needed.
    BufferTooSmall = 2,
    /// A file could not be read (missing, unreadable, a directory).
    Io = 3,
    /// Not a wgvision model file, weights that disagree with the config, an unsupported
    /// model, or the wrong kind of model for the call (detection on a classifier).
    Model = 4,
    /// Input the model rejects: pixel shape, an image that does not decode, queries
    /// the tokenizer or vocabulary cannot take.
    Input = 5,
    /// No GPU adapter, a device that cannot be opened or was lost, a limit of the
    /// adapter that the model exceeds.
    Device = 6,
    /// An internal error (a Rust panic) caught at the boundary: a bug in wgvision.
    Panic = 7,
}

/// A failed call: its status and message.
pub(crate) struct Fail {
    pub status: WgvStatus,
    pub message: String,
}

pub(crate) type Res<T> = Result<T, Fail>;

pub(crate) fn fail(status: WgvStatus, message: impl Into<String>) -> Fail {
    Fail { status, message: message.into() }
}

pub(crate) fn invalid(message: impl Into<String>) -> Fail {
    fail(WgvStatus::InvalidArgument, message)
}

impl From<wgvision::Error> for Fail {
    fn from(e: wgvision::Error) -> Fail {
        use wgvision::engine::EngineError as E;
        use wgvision::weights::WeightsError as W;
        let engine = |e: &E| match e {
            E::UnknownBackend(_) => WgvStatus::InvalidArgument,
            E::NoAdapter { .. } | E::RequestDevice { .. } | E::LimitExceeded { .. } | E::Gpu(_) | E::Shader { .. } => WgvStatus::Device,
            E::ShapeMismatch { .. } | E::MissingInput { .. } => WgvStatus::Input,
            E::InvalidOp { .. } | E::InvalidGraph(_) | E::MissingWeight(_) => WgvStatus::Model,
            // A variant added later: the message still says what happened.
            #[allow(unreachable_patterns)]
            _ => WgvStatus::Model,
        };
        let status = match &e {
            wgvision::Error::Engine(x) => engine(x),
            wgvision::Error::Weights(W::Io { .. }) => WgvStatus::Io,
            wgvision::Error::Graph(_) | wgvision::Error::Weights(_) => WgvStatus::Model,
            wgvision::Error::Input { .. } | wgvision::Error::Image { .. } => WgvStatus::Input,
            #[allow(unreachable_patterns)]
            _ => WgvStatus::Model,
        };
        fail(status, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Replace this thread's message (interior NULs, which C cannot hold, are escaped).
fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // During thread teardown the slot may be gone: then there is nobody to read it.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = c);
}

/// The message of this thread's last failed call, or "" after a call that succeeded.
pub(crate) fn last_error_ptr() -> *const c_char {
    static EMPTY: &CStr = c"";
    LAST_ERROR.try_with(|slot| slot.borrow().as_ptr()).unwrap_or(EMPTY.as_ptr())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error in wgvision (please report it): {what}")
}

/// Run an exported function's body: Ok -> WGV_STATUS_OK and an empty message; an error ->
/// its status and message; a panic -> WGV_STATUS_PANIC. Nothing unwinds past here.
pub(crate) fn guard(body: impl FnOnce() -> Res<()>) -> WgvStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            set_last_error("");
            WgvStatus::Ok
        }
        Ok(Err(f)) => {
            set_last_error(&f.message);
            f.status
        }
        Err(payload) => {
            set_last_error(&panic_message(&*payload));
            WgvStatus::Panic
        }
    }
}

/// `guard` for calls that return a pointer: null on failure (the message says why).
pub(crate) fn guard_ptr<T>(body: impl FnOnce() -> Res<*const T>) -> *const T {
    let mut out = std::ptr::null();
    let status = guard(|| {
        out = body()?;
        Ok(())
    });
    if status == WgvStatus::Ok {
        out
    } else {
        std::ptr::null()
    }
}

/// For `free` functions: a panic in a destructor is swallowed (recorded as the message),
/// since a void function has no status to return.
pub(crate) fn guard_void(body: impl FnOnce()) {
    let _ = guard(|| {
        body();
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> String {
        unsafe { CStr::from_ptr(last_error_ptr()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let status = guard(|| panic!("boom {}", 42));
        assert_eq!(status, WgvStatus::Panic);
        assert!(message().contains("boom 42"), "{}", message());
        assert_eq!(guard(|| Ok(())), WgvStatus::Ok);
        assert_eq!(message(), "");
    }

    #[test]
    fn errors_keep_their_status_and_message_per_thread() {
        assert_eq!(guard(|| Err(invalid("path is null"))), WgvStatus::InvalidArgument);
        assert_eq!(message(), "path is null");
        // Another thread has its own message.
        std::thread::spawn(|| assert_eq!(message(), "")).join().unwrap();
        assert_eq!(message(), "path is null");
        assert_eq!(guard(|| Err(invalid("a\0b"))), WgvStatus::InvalidArgument);
        assert_eq!(message(), "a\\0b");
        assert!(guard_ptr::<u8>(|| panic!("x")).is_null());
    }
}
