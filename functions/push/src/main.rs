//! The push function (Lambda function URL): Exchange and LN notifications in, single-event
//! sync jobs out. The router lives in `lnsync_runtime::push`, shared with `lnsync serve`.

fn main() {}
