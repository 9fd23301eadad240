//! Locking a mutex whose holder panicked. Every lock in frcstream guards plain data that
//! stays consistent between statements (counters, lists, the latest value), so a panic in
//! one thread must not take down every other thread that reads it: the guard is taken
//! back from the poison and used as it is.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, also after a thread panicked while holding it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_poisoned_mutex_still_gives_its_data() {
        let shared = Arc::new(Mutex::new(41));
        let holder = Arc::clone(&shared);
        let panicked = std::thread::spawn(move || {
            let mut value = holder.lock().expect("first lock");
            *value += 1;
            panic!("the holder panics");
        })
        .join();
        assert!(panicked.is_err());
        assert!(shared.is_poisoned());
        assert_eq!(*lock(&shared), 42);
    }
}
