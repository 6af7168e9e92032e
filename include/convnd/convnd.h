// convnd: the conv_general family, correct at any size, in bounded memory.
#pragma once
#include <convnd/conv.h>
#include <convnd/dtype.h>
#include <convnd/plan.h>
#include <convnd/problem.h>
#include <convnd/reference.h>
#include <convnd/status.h>
#include <convnd/tensor.h>
