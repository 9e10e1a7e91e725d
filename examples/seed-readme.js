// The JavaScript samples of the original (2011, v0.0.1) README, unchanged apart from the
// connection string (MONGODB_URI if set), plus just enough to print the results and disconnect.
//
//   MONGODB_URI=mongodb://127.0.0.1:27017/pts_test node examples/seed-readme.js
//
// Exits 0 after printing the container and the task, 1 on an error.

/* global require, process, console */
/* eslint-disable @typescript-eslint/no-require-imports */

// Basic Setup
var client, mongoose;
client = require('persistent-task-status').client;
mongoose = require('mongoose');
mongoose.connect(process.env.MONGODB_URI || 'mongodb://localhost/pts_test');

// Retrieving a task container. A task container encapsulates the persistent
// state for individual tasks.
client.getOrCreateTaskContainer('the unique name here', function(e, taskContainer) {
  if (e) return finish(e);
  console.log('container: ' + taskContainer.name() + ' (new: ' + taskContainer.isNew + ')');

  // We can use the task container to add tasks. They will be immediately persisted.
  taskContainer.addTask("my unique name within container", null, function(e, task) {
    if (e) return finish(e);
    console.log('task: ' + task.name());
    console.log('  isComplete: ' + task.isComplete());
    console.log('  hasFailed: ' + task.hasFailed());
    console.log('  percentageComplete: ' + task.percentageComplete());
    console.log('  statusText: ' + task.statusText());
    console.log('  taskData: ' + JSON.stringify(task.taskData()));
    console.log('  processingData: ' + JSON.stringify(task.processingData()));
    console.log('  invokeCount: ' + task.invokeCount());
    console.log('  lastInvokedAt: ' + task.lastInvokedAt());
    console.log('  taskEndedAt: ' + task.taskEndedAt());
    console.log('  taskDurationInMilliseconds: ' + task.taskDurationInMilliseconds());
    console.log('  leasedTill: ' + task.leasedTill());
    console.log('  maxRetries: ' + task.maxRetries());
    console.log('  delayBetweenRetriesInSeconds: ' + task.delayBetweenRetriesInSeconds());
    finish(null);
  });
});

function finish(e) {
  if (e) console.error('error: ' + (e.stack || e));
  mongoose.disconnect().then(
    function() { process.exit(e ? 1 : 0); },
    function(err) { console.error('disconnect failed: ' + err); process.exit(1); }
  );
}
